"""two languages (SPEC §14): a person's own choice of language; the consent text in Bokmål

Revision ID: 0009
Revises: 0005
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0005"
branch_labels = None
depends_on = None

# The text 0002 installed, as it was given: only a policy still saying exactly this gets
# its Norwegian wording here (an admin's own text needs the admin's own translation).
CONSENT_TEXT_V1 = """\
You are choosing to share this one recording for coaching.

- Only the coaches you pick can watch it, only for the purpose you write, and only until the \
end date you set.
- They can watch and comment. They cannot download it.
- Every time someone watches, it is logged, and you can see that log.
- You can withdraw at any time with one click. Access stops at once, the recording's key is \
destroyed, and you receive a signed deletion certificate.
- Not sharing is always fine. Nobody is told that you decided not to share."""

CONSENT_TEXT_V1_NB = """\
Du velger å dele dette ene opptaket til veiledning.

- Bare veilederne du velger, kan se det, bare til formålet du skriver, og bare fram til \
sluttdatoen du setter.
- De kan se opptaket og kommentere det. De kan ikke laste det ned.
- Hver gang noen ser det, blir det logget, og du kan se den loggen.
- Du kan trekke delingen tilbake når som helst, med ett klikk. Tilgangen stopper med en gang, \
nøkkelen til opptaket blir slettet, og du får et signert slettebevis.
- Det er alltid greit å la være å dele. Ingen får vite at du valgte å ikke dele."""


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("language", sa.String(length=8), nullable=True))
    with op.batch_alter_table("policies") as batch:
        batch.add_column(sa.Column("consent_text_nb", sa.Text(), nullable=True))
    policies = sa.table(
        "policies", sa.column("consent_text", sa.Text), sa.column("consent_text_nb", sa.Text)
    )
    op.execute(
        policies.update()
        .where(policies.c.consent_text == CONSENT_TEXT_V1)
        .values(consent_text_nb=CONSENT_TEXT_V1_NB)
    )


def downgrade() -> None:
    with op.batch_alter_table("policies") as batch:
        batch.drop_column("consent_text_nb")
    with op.batch_alter_table("users") as batch:
        batch.drop_column("language")
