// An OpenID Connect provider for tests (panva/oidc-provider with its development login and
// consent pages). Usage: node idp.mjs PORT REDIRECT_URI [EMAIL_VERIFIED=true]
// Any login name is accepted; the account's email is <login>@example.test. Prints
// {"listening": PORT} when ready. Exits when stdin closes (the test process ended).
import Provider from 'oidc-provider'

const [port, redirectUri, verified = 'true'] = process.argv.slice(2)
const issuer = `http://127.0.0.1:${port}`
const provider = new Provider(issuer, {
  clients: [{
    client_id: 'demiurge', client_secret: 'demiurge-secret', redirect_uris: [redirectUri],
    grant_types: ['authorization_code'], response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
  }],
  pkce: { required: () => true },
  claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name', 'preferred_username'] },
  async findAccount(ctx, id) {
    return {
      accountId: id,
      async claims() {
        return { sub: `sub-${id}`, email: `${id}@example.test`, email_verified: verified === 'true',
          name: `User ${id}`, preferred_username: id }
      },
    }
  },
  cookies: { keys: ['test-cookie-key'] },
})
provider.listen(Number(port), '127.0.0.1', () => {
  process.stdout.write(JSON.stringify({ listening: Number(port) }) + '\n')
})
process.stdin.on('end', () => process.exit(0))
process.stdin.resume()
