// A real OpenID Provider (npm oidc-provider) for the tests, on loopback.
// Usage: node provider.mjs CONFIG.json — the test writes the config: issuer, port, signing keys
// (JWKS with private parts), clients, and the file of accounts (re-read at every look-up, so
// a test can move someone to another group between two sign-ins).
// Sign-in and consent are the provider's own pages (devInteractions: any password is taken).
import fs from 'node:fs';
import Provider from 'oidc-provider';

const config = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const accounts = () => JSON.parse(fs.readFileSync(config.accountsFile, 'utf8'));

const provider = new Provider(config.issuer, {
  clients: config.clients,
  jwks: config.jwks,
  cookies: { keys: ['consent-replay-test-provider'] },
  claims: {
    openid: ['sub'],
    profile: ['name', 'preferred_username', 'groups'],
    email: ['email', 'email_verified'],
  },
  // As Entra ID and Keycloak do: the profile claims (the groups) in the ID token itself.
  conformIdTokenClaims: false,
  pkce: { required: () => true },
  features: {
    devInteractions: { enabled: true },
    backchannelLogout: { enabled: true },
    rpInitiatedLogout: { enabled: true },
  },
  ttl: { IdToken: config.idTokenTtl || 3600 },
  // Back-channel logouts go to the app under test on loopback, which the provider's guard
  // against server-side request forgery refuses by default (its dispatcher): allowed here.
  fetch(url, options) {
    const { dispatcher, ...rest } = options;
    return fetch(url, rest);
  },
  async findAccount(ctx, id) {
    const claims = accounts()[id];
    if (!claims) return undefined;
    return { accountId: id, claims: async () => ({ sub: id, ...claims }) };
  },
});
provider.on('backchannel.error', (ctx, error, client) => {
  console.error(`backchannel logout to ${client.clientId} failed: ${error}`);
});
provider.on('backchannel.success', (ctx, client) => {
  console.log(`backchannel logout to ${client.clientId} delivered`);
});

const server = provider.listen(config.port, '127.0.0.1', () => {
  console.log(`oidc-provider ready on ${config.port} as ${config.issuer}`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
