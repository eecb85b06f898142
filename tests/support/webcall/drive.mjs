// Drives the platform's /webcall page in Debian's headless Chromium, for the web call's
// end-to-end test (tests/sip_tls.rs). The browser has a fake microphone (a tone) and grants
// it without asking; WebRTC may use loopback, as everything in the tests is on 127.0.0.1.
//
//   node drive.mjs <page URL>
//
// Then one command per line on stdin; each is answered with one line on stdout, `ok <status>`
// or `error <what>` (the page's own log follows an error, on stderr):
//   register <user> <domain> <password>   sign in; waits for "registered"
//   call <target>                          call; waits for "in call"
//   answer                                 wait for an incoming call, answer it; waits for "in call"
//   key <k>                                press a key of the page's keypad
//   wait <status> <seconds>                wait until the page's status starts with <status>
//   hangup                                 hang up
//   quit                                   close the browser and exit (answers `ok closed`)
import { createInterface } from 'node:readline';
import { chromium } from 'playwright-core';

const url = process.argv[2];
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: [
    '--use-fake-ui-for-media-stream',
    '--use-fake-device-for-media-stream',
    '--allow-loopback-in-peer-connection',
    '--no-sandbox',
    // The tests' wss listener presents a self-signed certificate made by the test.
    '--ignore-certificate-errors',
  ],
});
const page = await (await browser.newContext()).newPage();
page.on('console', (message) => console.error(`[page] ${message.text()}`));
page.on('pageerror', (error) => console.error(`[page error] ${error.message}`));
await page.goto(url);

const status = () => page.textContent('#status');

async function waitFor(prefix, seconds, failures = []) {
  const deadline = Date.now() + seconds * 1000;
  for (;;) {
    const now = await status();
    if (now.startsWith(prefix)) return now;
    if (failures.some((failure) => now.startsWith(failure)) || Date.now() > deadline) {
      throw new Error(`status "${now}", waited for "${prefix}"`);
    }
    await page.waitForTimeout(50);
  }
}

async function run(line) {
  const [command, ...args] = line.trim().split(/\s+/);
  switch (command) {
    case 'register':
      await page.fill('#user', args[0]);
      await page.fill('#domain', args[1]);
      await page.fill('#password', args[2]);
      await page.click('#register');
      return waitFor('registered', 15, ['registration failed']);
    case 'call':
      await page.fill('#target', args[0]);
      await page.click('#call');
      return waitFor('in call', 20, ['call failed', 'call ended']);
    case 'answer':
      await waitFor('incoming call', 20);
      await page.click('#answer');
      return waitFor('in call', 20, ['call failed', 'call ended']);
    case 'key':
      await page.click(`#keypad button[data-key="${args[0]}"]`);
      return status();
    case 'wait':
      return waitFor(args[0], Number(args[1]));
    case 'hangup':
      await page.click('#hangup');
      return status();
    case 'quit':
      await browser.close();
      console.log('ok closed');
      process.exit(0);
      break;
    default:
      throw new Error(`unknown command ${command}`);
  }
}

console.log('ok ready');
for await (const line of createInterface({ input: process.stdin })) {
  if (!line.trim()) continue;
  try {
    console.log(`ok ${await run(line)}`);
  } catch (error) {
    console.log(`error ${error.message}`);
    console.error(await page.textContent('#log'));
  }
}
await browser.close();
