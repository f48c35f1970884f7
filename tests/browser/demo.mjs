// A visitor's first minutes with `ficha demo --web`, in Debian's headless Chromium (run by
// tests/tests/demo.rs). Exits non-zero, naming the step, at the first thing that goes wrong.
import { env, launch, shot, step } from './harness.mjs';

const [MADRID, OFFICE_LINK] = [env('MADRID_URL'), env('OFFICE_LINK')];
// Far from the sample group in Spain: times must still read as the replica's (Madrid's).
const ctx = await launch({ timezoneId: 'Pacific/Auckland' });
try {
  const a = await ctx.newPage();
  await step('sign in at the Madrid branch with the printed code and password', async () => {
    await a.goto(MADRID + '/');
    await a.locator('#signin').waitFor({ state: 'visible' });
    await a.getByLabel('Empleado (código)').fill('ana');
    await a.getByLabel('Contraseña').fill('ficha-demo');
    await a.locator('#signin button').click();
    await a.locator('#who', { hasText: 'Ana García Molina' }).waitFor();
  });
  await step("the branch's sample clients are listed with a count", async () => {
    await a.goto(MADRID + '/clients');
    await a.locator('#count', { hasText: /de 60\b/ }).waitFor();
    await shot(a, 'demo-clients');
  });
  await step('a sample client with a latex allergy shows the banner and her history', async () => {
    await a.keyboard.press('/');
    await a.keyboard.type('Pablo Sánchez Ramos');
    await a.locator('#rows a', { hasText: 'Pablo Sánchez Ramos' }).first().click();
    await a.waitForURL(/\/clients\/[0-9a-f-]{36}/);
    await a.locator('#banner', { hasText: 'látex' }).waitFor();
    await a.locator('[data-tab="appointments"]').click();
    const done = a.locator('tbody[data-kind-rows="appointment"] tr', { hasText: 'Realizada' }).first();
    await done.waitFor();
    // Sample visits are booked between 09:00 and 17:00 Madrid time (21:00 to 05:00 in Auckland).
    const hour = (await done.innerText()).match(/\b(\d{2}):00\b/)?.[1];
    if (!(Number(hour) >= 9 && Number(hour) <= 17)) throw new Error(`a visit shown at ${hour}:00, not in Madrid's time`);
    await a.locator('[data-tab="billing"]').click();
    await a.locator('tbody[data-kind-rows="invoice"] tr', { hasText: '€' }).first().waitFor();
    await shot(a, 'demo-file');
    await a.setViewportSize({ width: 390, height: 844 });
    await shot(a, 'demo-file-390px');
  });
  await step('the upcoming-appointments filter counts only clients with one booked', async () => {
    await a.setViewportSize({ width: 1280, height: 900 });
    await a.goto(MADRID + '/clients');
    await a.locator('#count', { hasText: /de 60\b/ }).waitFor();
    await a.getByLabel('Con citas próximas').check();
    // Every third sample client has an appointment booked in the next two weeks.
    await a.locator('#count', { hasText: /de 20\b/ }).waitFor();
    await a.getByLabel('Con citas próximas').uncheck();
    await a.locator('#count', { hasText: /de 60\b/ }).waitFor();
  });
  await step('a new client with the phone of an existing one is warned before creating', async () => {
    const f = a.locator('form[data-form="new-client"]');
    await f.getByLabel('Nombre').fill('Persona Repetida');
    // The first sample client's phone, typed the way people type it.
    await f.getByLabel('Teléfono').fill('610 000 000');
    await a.locator('#similar', { hasText: 'mismo teléfono' }).waitFor();
    await a.locator('#similar a').first().waitFor();
    await f.getByLabel('Teléfono').fill('699 999 991');
    await a.waitForFunction(() => !document.querySelector('#similar').textContent.includes('mismo'));
  });
  await step("the employee's language follows her, not the browser", async () => {
    const kept = a.waitForResponse(r => r.url().endsWith('/api/session/language') && r.ok());
    await a.locator('#lang').selectOption('en');
    await kept;
    await a.locator('#count', { hasText: /of 60\b/ }).waitFor();
    // A browser that never saw her choice: the page takes it from her employee record.
    await a.evaluate(() => localStorage.clear());
    await a.reload();
    await a.locator('#count', { hasText: /of 60\b/ }).waitFor();
    if ((await a.getAttribute('html', 'lang')) !== 'en') throw new Error('html lang is not en');
    await a.locator('#lang').selectOption('es');
    await a.locator('#count', { hasText: /de 60\b/ }).waitFor();
  });
  await step("the central office's link shows both companies' clients", async () => {
    const o = await ctx.newPage();
    await o.goto(OFFICE_LINK);
    await o.goto(OFFICE_LINK.split('/?token=')[0] + '/clients');
    await o.locator('#count', { hasText: /de 120\b/ }).waitFor();
    await shot(o, 'demo-office');
  });
  await step('an archived client whose double was created meanwhile is reactivated only after a check', async () => {
    await a.goto(MADRID + '/clients');
    const f = a.locator('form[data-form="new-client"]');
    await f.getByLabel('Teléfono').fill('610 000 000');
    await a.locator('#similar a').first().click();
    await a.waitForURL(/\/clients\/[0-9a-f-]{36}/);
    const original = a.url();
    await a.locator('[data-move="archive"]').click();
    await a.locator('#state-msg', { hasText: 'Hecho' }).waitFor();
    await a.locator('[data-panel="general"]', { hasText: 'Histórico' }).waitFor();
    // Someone, not seeing her in the active list, creates her again.
    await a.goto(MADRID + '/clients');
    await f.getByLabel('Nombre').fill('Persona Repetida');
    await f.getByLabel('Teléfono').fill('610 000 000');
    await f.locator('button', { hasText: 'Crear' }).click();
    await a.waitForURL(u => /\/clients\/[0-9a-f-]{36}/.test(u.toString()) && u.toString() !== original);
    await a.goto(original);
    await a.locator('[data-move="restore"]').click();
    await a.locator('#state-msg', { hasText: 'No se ha hecho' }).waitFor();
    await a.locator('#state-msg li', { hasText: 'Persona Repetida' }).filter({ hasText: 'mismo teléfono' }).waitFor();
    await shot(a, 'demo-reactivation-refused');
    await a.locator('#state-msg button', { hasText: 'Reactivar igualmente' }).click();
    await a.locator('#state-msg', { hasText: 'Hecho' }).waitFor();
    await a.locator('[data-panel="general"]', { hasText: 'Activo' }).waitFor();
  });
  console.log('demo ok');
} finally {
  await ctx.close();
}
