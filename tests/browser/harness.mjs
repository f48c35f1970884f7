// What every browser test script shares: its settings from the environment, Debian's headless
// Chromium started the way the machine needs, named steps and screenshots.
import { chromium } from 'playwright-core';
import path from 'node:path';

/** The value of an environment variable the Rust test must set. */
export const env = k => { const v = process.env[k]; if (!v) throw new Error(`${k} is not set`); return v; };

/** Runs one step; a failure names the step before it ends the script. */
export const step = async (name, f) => {
  try { return await f(); } catch (e) { console.error(`step failed: ${name}: ${e.message}`); throw e; }
};

/** Chromium with a fresh profile (PROFILE) at CHROMIUM; `options` adds context settings. */
export async function launch(options = {}) {
  const ctx = await chromium.launchPersistentContext(env('PROFILE'), {
    executablePath: env('CHROMIUM'),
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--no-first-run'],
    ...options,
  });
  ctx.setDefaultTimeout(15000);
  return ctx;
}

/** A full-page screenshot in SHOTS, for a person to look at after the run. */
export const shot = (page, name) => page.screenshot({ path: path.join(env('SHOTS'), name + '.png'), fullPage: true });
