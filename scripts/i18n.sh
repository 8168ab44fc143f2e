#!/usr/bin/env bash
# The gettext catalogs (SPEC §14): English is the source, nb the translation.
#   scripts/i18n.sh extract   templates, Python and scripts → app/translations/*.pot, then
#                             merged into app/translations/nb/LC_MESSAGES/*.po (translate there)
#   scripts/i18n.sh compile   *.po → *.mo (the install step; .mo files are never committed)
set -euo pipefail
cd "$(dirname "$0")/.."
PYBABEL="${PYBABEL:-.venv/bin/pybabel}"
DIR=app/translations
LANGS=(nb)

extract() {
  "$PYBABEL" extract -F babel.cfg --no-location --sort-output \
    --project consent-replay --msgid-bugs-address "" -o "$DIR/messages.pot" .
  "$PYBABEL" extract -F babel-js.cfg --no-default-keywords -k t -k tn:1,2 \
    --no-location --sort-output --project consent-replay --msgid-bugs-address "" \
    -o "$DIR/js.pot" .
  for domain in messages js; do
    for lang in "${LANGS[@]}"; do
      if [[ -f "$DIR/$lang/LC_MESSAGES/$domain.po" ]]; then
        "$PYBABEL" update --no-fuzzy-matching --ignore-obsolete -D "$domain" \
          -i "$DIR/$domain.pot" -d "$DIR" -l "$lang"
      else
        "$PYBABEL" init -D "$domain" -i "$DIR/$domain.pot" -d "$DIR" -l "$lang"
      fi
    done
  done
}

compile() {
  for domain in messages js; do
    "$PYBABEL" compile -D "$domain" -d "$DIR"
  done
}

case "${1:-}" in
  extract) extract ;;
  compile) compile ;;
  *) echo "usage: $0 extract|compile" >&2; exit 2 ;;
esac
