// The portals in a real browser (Debian's Chromium, driven by playwright-core). Run by
// tests/suite/browser.rs, which starts the server, seeds the users and writes the configuration
// this reads (argv[2]): base URL, the mail log, captchas minted by the vault (a test cannot read
// the picture: the page's own captcha id is replaced by one whose answer is known), tokens, and the
// folder for screenshots. Exits non-zero on the first failed expectation.
import { readFileSync, mkdirSync } from 'node:fs';
import { strict as assert } from 'node:assert';
import { chromium } from 'playwright-core';

const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const shots = config.screenshots;
mkdirSync(shots, { recursive: true });
const captchas = [...config.captchas];

function codes() {
  let text = '';
  try { text = readFileSync(config.mail, 'utf8'); } catch { /* not written yet */ }
  return text.split(/\r?\n/).filter(l => l.startsWith('Your sign-in code for')).map(l => l.split(' is ').pop().replace(/\.$/, ''));
}

async function nthCode(n) {
  for (let i = 0; i < 200; i++) {
    const all = codes();
    if (all.length >= n) return all[n - 1];
    await new Promise(r => setTimeout(r, 50));
  }
  throw new Error(`no login code number ${n} in the mail log`);
}

async function shot(page, name) {
  await page.screenshot({ path: `${shots}/${name}.png`, fullPage: true });
}

let mails = 0;
async function userSignIn(page, email, screenshots) {
  await page.goto(config.base + '/');
  await page.getByLabel('Your e-mail address', { exact: true }).fill(email);
  const captcha = captchas.shift();
  await page.locator('input[name=captcha]').evaluate((input, id) => { input.value = id; }, captcha.id);
  await page.getByLabel('The letters in the picture', { exact: true }).fill(captcha.answer);
  if (screenshots) await shot(page, 'user-sign-in');
  await page.getByRole('button', { name: 'Send me a code' }).click();
  await page.getByLabel('The six-digit code', { exact: true }).waitFor();
  mails += 1;
  const code = await nthCode(mails);
  if (screenshots) await shot(page, 'user-code');
  await page.getByLabel('The six-digit code', { exact: true }).fill(code);
  await page.getByRole('button', { name: 'Sign in' }).click();
  try {
    await page.getByRole('heading', { name: 'Your profile' }).waitFor({ timeout: 10000 });
  } catch (e) {
    await shot(page, 'failed-sign-in');
    console.error('at', page.url(), (await page.locator('main').innerText()).slice(0, 500));
    console.error('cookies', (await page.context().cookies()).map(c => c.name));
    throw e;
  }
}

async function adminSignIn(page, token) {
  await page.goto(config.base + '/admin');
  await page.getByLabel('Access token', { exact: true }).fill(token);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('heading', { name: 'Open requests' }).waitFor();
}

const browser = await chromium.launch({ executablePath: config.chromium || '/usr/bin/chromium', args: ['--no-sandbox'] });
const violations = [];
async function context() {
  const ctx = await browser.newContext({ viewport: { width: 1100, height: 800 } });
  ctx.on('console', msg => { if (msg.type() === 'error') violations.push(`${msg.location().url}: ${msg.text()}`); });
  return ctx;
}
try {
  // 1. Jane signs in with a code and asks for her name to be corrected: a request.
  const jane = await (await context()).newPage();
  const thirdParty = [];
  jane.on('request', r => { if (!r.url().startsWith(config.base) && !r.url().startsWith('data:')) thirdParty.push(r.url()); });
  await userSignIn(jane, config.jane, true);
  await shot(jane, 'user-profile');
  const cookies = await jane.context().cookies();
  const session = cookies.find(c => c.name === 'bunker_user');
  assert.ok(session && session.httpOnly && session.secure && session.sameSite === 'Strict', 'session cookie flags');
  assert.deepEqual(await jane.evaluate(() => Object.keys(localStorage)), [], 'nothing in localStorage');
  // htmx keeps only the current path (no query with personal data: lookups are POSTs) for the tab.
  const kept = await jane.evaluate(() => Object.entries(sessionStorage));
  assert.ok(kept.every(([k, v]) => k === 'htmx-current-path-for-history' && !v.includes('@')), JSON.stringify(kept));
  await jane.getByLabel('name', { exact: true }).fill('Jane Smith');
  await jane.getByRole('button', { name: 'Save changes' }).click();
  await jane.getByText('Your change is sent to the data protection officer').waitFor();
  await jane.getByRole('link', { name: 'Requests' }).click();
  await jane.getByRole('cell', { name: 'Change of profile' }).waitFor();
  await shot(jane, 'user-requests');

  // 2. The DPO signs in, reviews the diff and approves.
  const dpo = await (await context()).newPage();
  await adminSignIn(dpo, config.root);
  await shot(dpo, 'admin-requests');
  await dpo.getByRole('link', { name: 'Review' }).first().click();
  await dpo.getByRole('heading', { name: 'What is stored, and what approval would store' }).waitFor();
  assert.equal(await dpo.locator('tr.changed td').last().innerText(), 'Jane Smith');
  await shot(dpo, 'admin-request-diff');
  await dpo.getByRole('button', { name: 'Approve' }).click();
  await dpo.getByText('The request is approved').waitFor();

  // 3. Jane sees her new name.
  await jane.goto(config.base + '/');
  assert.ok((await jane.locator('dl.facts').innerText()).includes('Jane Smith'), 'the approved name shows');

  // 4. Jane withdraws a consent (the basis lets users withdraw alone).
  await jane.getByRole('link', { name: 'Consents' }).click();
  await shot(jane, 'user-consents');
  await jane.getByRole('button', { name: 'Withdraw' }).click();
  await jane.getByText('Your consent is withdrawn.').waitFor();
  assert.equal(await jane.getByRole('button', { name: 'Withdraw' }).count(), 0);
  await jane.getByRole('link', { name: 'Activity' }).click();
  await jane.getByRole('cell', { name: 'AgreementCancel' }).first().waitFor();
  await shot(jane, 'user-activity');
  await jane.getByRole('link', { name: 'Your data' }).click();
  await shot(jane, 'user-data');
  // Her file and her report come down as files (not swapped into the page by htmx).
  const read = async (download) => readFileSync(await download.path(), 'utf8');
  let download = jane.waitForEvent('download');
  await jane.getByRole('button', { name: 'Download' }).click();
  download = await download;
  assert.equal(download.suggestedFilename(), 'note.txt');
  assert.equal(await read(download), 'hello jane');
  download = jane.waitForEvent('download');
  await jane.getByRole('link', { name: 'Your data for another service (JSON)' }).click();
  download = await download;
  assert.equal(download.suggestedFilename(), 'my-data.json');
  assert.ok((await read(download)).includes('Jane Smith'), 'the report holds her profile');
  assert.equal(await jane.locator('h1').innerText(), 'Your data', 'the page stays');

  // 5. Bob asks to be forgotten; the DPO approves; Bob's record is gone.
  const bob = await (await context()).newPage();
  await userSignIn(bob, config.bob, false);
  await bob.getByRole('link', { name: 'Your data' }).click();
  bob.once('dialog', d => d.accept());
  await bob.getByRole('button', { name: 'Forget me' }).click();
  await bob.getByText('Your request to be forgotten is sent').waitFor();
  await dpo.goto(config.base + '/admin');
  await dpo.getByRole('cell', { name: 'Forget me' }).waitFor();
  await dpo.getByRole('link', { name: 'Review' }).first().click();
  await dpo.getByRole('button', { name: 'Approve' }).click();
  await dpo.getByText('The request is approved').waitFor();
  const gone = await fetch(config.base + '/v2/UserGet', {
    method: 'POST', headers: { 'X-Bunker-Token': config.root },
    body: JSON.stringify({ mode: 'email', identity: config.bob }),
  });
  assert.equal(gone.status, 404, 'Bob is forgotten');

  // 6. The DPO's other pages.
  await dpo.getByRole('link', { name: 'Users' }).click();
  await dpo.getByLabel('Value', { exact: true }).fill(config.jane);
  await dpo.getByRole('button', { name: 'Find' }).click();
  await dpo.getByRole('heading', { name: 'Consents' }).waitFor();
  await shot(dpo, 'admin-user');
  await dpo.getByRole('link', { name: 'Legal bases' }).click();
  await shot(dpo, 'admin-legal-bases');
  await dpo.getByRole('link', { name: 'Audit trail' }).click();
  await shot(dpo, 'admin-audit');
  await dpo.getByRole('link', { name: 'System' }).click();
  await dpo.locator('figure.chart svg rect').first().waitFor();
  await shot(dpo, 'admin-system');

  // 7. A role that may see names only sees Jane's other fields masked, in the portal too.
  const support = await (await context()).newPage();
  await adminSignIn(support, config.names_only);
  await support.goto(`${config.base}/admin/users?mode=token&identity=${config.jane_token}`);
  const facts = await support.locator('dl.facts').first().innerText();
  assert.ok(facts.includes('Jane Smith'), 'the name shows');
  assert.ok(facts.includes('***') && !facts.includes(config.jane), 'the e-mail address is masked');
  await shot(support, 'admin-user-names-only');

  assert.deepEqual(thirdParty, [], 'no third-party requests');
  assert.deepEqual(violations.filter(v => /Content Security Policy|Refused/.test(v)), [], 'no CSP violations');
  console.log(`portal browser run: ok (${shots})`);
} finally {
  await browser.close();
}
