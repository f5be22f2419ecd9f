// The Databunker OSS npm clients against Bunker's /v1, unchanged: @databunker/store (users, app
// records, agreements, legal bases) and @databunker/session-store under express-session. Run by
// tests/suite/v1_clients.rs, which starts the server and writes the configuration this reads
// (argv[2]): the base URL and a token. Exits non-zero on the first failed expectation.
const { readFileSync } = require('node:fs');
const assert = require('node:assert/strict');
const DatabunkerStore = require('@databunker/store');
const session = require('express-session');
const express = require('express');
const { v4: uuidv4 } = require('uuid');
const DataBunkerSessionStore = require('@databunker/session-store')(session);

const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));

async function store() {
  const db = new DatabunkerStore({ url: config.base + '/', token: config.token });
  // Users: create, then get by token, e-mail and login; change; a bad mode is refused.
  const made = await db.users.create({ email: 'Ann@Example.com', login: 'ann', name: 'Ann', phone: '+44 7911 123456' });
  assert.equal(made.status, 'ok', JSON.stringify(made));
  assert.match(made.token, /^[0-9a-f-]{36}$/);
  for (const [mode, identity] of [['token', made.token], ['email', 'ann@example.com'], ['login', 'ann'], ['phone', '+447911123456']]) {
    const got = await db.users.get(mode, identity);
    assert.equal(got.status, 'ok', `${mode}: ${JSON.stringify(got)}`);
    assert.equal(got.token, made.token);
    assert.equal(got.data.name, 'Ann');
  }
  const changed = await db.users.set('email', 'ann@example.com', { name: 'Ann Lee', phone: null });
  assert.equal(changed.status, 'ok', JSON.stringify(changed));
  const after = await db.users.get('login', 'ann');
  assert.equal(after.data.name, 'Ann Lee');
  assert.equal(after.data.phone, undefined, 'null removes a field');
  const missing = await db.users.get('email', 'nobody@example.com');
  assert.equal(missing.status, 'error');
  const bad = await db.users.get('nonsense', 'x');
  assert.equal(bad.status, 'error');
  const dup = await db.users.create({ email: 'ann@example.com' });
  assert.equal(dup.status, 'error', 'a taken e-mail is refused');

  // App records: set (replaces), get.
  const shop = db.collection('shop');
  assert.equal((await shop.set('login', 'ann', { cart: ['tea'], size: 'M' })).status, 'ok');
  assert.deepEqual((await shop.get('login', 'ann')).data, { cart: ['tea'], size: 'M' });
  assert.equal((await shop.set('login', 'ann', { cart: ['coffee'] })).status, 'ok');
  assert.deepEqual((await shop.get('token', made.token)).data, { cart: ['coffee'] }, 'a set replaces the record');

  // Legal bases and agreements.
  const bases = await db.agreements.rawlist();
  assert.equal(bases.status, 'ok', JSON.stringify(bases));
  assert.ok(bases.rows.some(b => b.brief === 'newsletter'), JSON.stringify(bases));
  const accepted = await db.agreements.accept('email', 'ann@example.com', 'newsletter', { agreementmethod: 'web-form', referencecode: 'r-1' });
  assert.equal(accepted.status, 'ok', JSON.stringify(accepted));
  const listed = await (await fetch(`${config.base}/v1/agreements/login/ann`, { headers: { 'X-Bunker-Token': config.token } })).json();
  assert.equal(listed.rows.find(r => r.brief === 'newsletter').status, 'yes', JSON.stringify(listed));
  const withdrawn = await db.agreements.withdraw('email', 'ann@example.com', 'newsletter');
  assert.equal(withdrawn.status, 'ok', JSON.stringify(withdrawn));
  const relisted = await (await fetch(`${config.base}/v1/agreements/login/ann`, { headers: { 'X-Bunker-Token': config.token } })).json();
  assert.equal(relisted.rows.find(r => r.brief === 'newsletter').status, 'no', JSON.stringify(relisted));
  const unknown = await db.agreements.accept('email', 'ann@example.com', 'no-such-basis', {});
  assert.equal(unknown.status, 'error');
}

async function sessions() {
  const app = express();
  app.use(session({
    genid: () => uuidv4(),
    secret: 'a-test-secret',
    resave: false,
    saveUninitialized: true,
    store: new DataBunkerSessionStore({ url: config.base + '/', token: config.token }),
  }));
  app.get('/', (req, res) => {
    req.session.count = (req.session.count || 0) + 1;
    res.json({ count: req.session.count, id: req.sessionID });
  });
  app.get('/destroy', (req, res) => req.session.destroy(err => res.json({ destroyed: !err })));
  const server = await new Promise(resolve => { const s = app.listen(0, '127.0.0.1', () => resolve(s)); });
  const base = `http://127.0.0.1:${server.address().port}`;
  try {
    const first = await fetch(base + '/');
    const cookie = first.headers.get('set-cookie').split(';')[0];
    const one = await first.json();
    assert.equal(one.count, 1);
    const two = await (await fetch(base + '/', { headers: { cookie } })).json();
    assert.equal(two.count, 2, 'the session survives a second request');
    assert.equal(two.id, one.id);
    const stored = await (await fetch(`${config.base}/v1/session/${one.id}`, { headers: { 'X-Bunker-Token': config.token } })).json();
    assert.equal(stored.status, 'ok', JSON.stringify(stored));
    assert.equal(stored.data.count, 2);
    const destroyed = await (await fetch(base + '/destroy', { headers: { cookie } })).json();
    assert.equal(destroyed.destroyed, true);
    const gone = await fetch(`${config.base}/v1/session/${one.id}`, { headers: { 'X-Bunker-Token': config.token } });
    assert.equal(gone.status, 404);
    assert.deepEqual(await gone.json(), { status: 'error', message: 'not found' });
    const fresh = await (await fetch(base + '/', { headers: { cookie } })).json();
    assert.equal(fresh.count, 1, 'after destroy, a new session');
  } finally {
    server.close();
  }
}

(async () => {
  await store();
  await sessions();
  console.log('v1 clients: ok');
})().catch(err => { console.error(err); process.exit(1); });
