// Staff's day in the web app, in Debian's headless Chromium (run by tests/tests/web.rs).
// Exits non-zero, naming the step, at the first thing a person would see go wrong.
import { env, launch, shot, step } from './harness.mjs';

const [A, B] = [env('A_URL'), env('B_URL')];
const ctx = await launch();
try {
  const a = await ctx.newPage();
  await step('sign in as an employee', async () => {
    await a.goto(A + '/');
    await a.locator('#signin').waitFor({ state: 'visible' });
    await a.getByLabel('Empleado (código)').fill(env('EMPLOYEE'));
    await a.getByLabel('Contraseña').fill(env('PASSWORD'));
    await a.locator('#signin button').click();
    await a.locator('#who', { hasText: 'Lucía Recepción' }).waitFor();
  });
  const id = await step('create a client', async () => {
    const f = a.locator('form[data-form="new-client"]');
    await f.getByLabel('Empresa').fill('acme');
    await f.getByLabel('Nombre').fill('Marta Ruiz Calleja');
    await f.getByLabel('Email').fill('marta@example.com');
    await f.getByRole('button', { name: 'Crear cliente' }).click();
    await a.waitForURL(/\/clients\/[0-9a-f-]{36}/);
    await a.locator('#name', { hasText: 'Marta Ruiz Calleja' }).waitFor();
    return a.url().match(/clients\/([0-9a-f-]{36})/)[1];
  });
  console.log('client ' + id);
  await step('find it by search', async () => {
    await a.goto(A + '/clients');
    await a.keyboard.press('/');
    await a.keyboard.type('Ruiz Calle');
    await a.locator('#rows a', { hasText: 'Marta Ruiz Calleja' }).waitFor();
    await a.locator('#count', { hasText: /1 de 1/ }).waitFor();
  });
  await step('open its file by URL, and again after a reload', async () => {
    await a.goto(`${A}/clients/${id}`);
    await a.locator('#name', { hasText: 'Marta Ruiz Calleja' }).waitFor();
    await a.reload();
    await a.locator('#name', { hasText: 'Marta Ruiz Calleja' }).waitFor();
  });
  const b = await ctx.newPage();
  await step("open the same file on the other branch's page", async () => {
    await b.goto(env('B_LINK'));
    await b.goto(`${B}/clients/${id}`);
    await b.locator('#name', { hasText: 'Marta Ruiz Calleja' }).waitFor({ timeout: 20000 });
    await b.locator('[data-tab="notes"]').click();
  });
  await step('a note typed offline appears on the other page once back online, without a reload', async () => {
    await a.locator('#offline').check();
    await a.locator('#status', { hasText: 'Desconectado a mano' }).waitFor();
    await a.locator('[data-tab="notes"]').click();
    await a.locator('form[data-form="note"] textarea').fill('Nota escrita sin conexión');
    await a.locator('form[data-form="note"] button', { hasText: 'Añadir nota' }).click();
    await a.locator('[data-panel="notes"] .data', { hasText: 'Nota escrita sin conexión' }).waitFor();
    await shot(a, 'offline-note');
    await b.waitForTimeout(1500);
    if (await b.locator('[data-panel="notes"] .data', { hasText: 'Nota escrita sin conexión' }).count()) {
      throw new Error('the note crossed while A was offline');
    }
    await b.evaluate(() => { window.__marker = 1; });
    await a.locator('#offline').uncheck();
    await b.locator('[data-panel="notes"] .data', { hasText: 'Nota escrita sin conexión' }).waitFor({ timeout: 20000 });
    if (await b.evaluate(() => window.__marker) !== 1) throw new Error('page B reloaded');
  });
  await step('edit-to-DOM latency across replicas', async () => {
    const ms = [];
    for (let i = 0; i < 20; i++) {
      const text = `latido ${i}`;
      const t0 = Date.now();
      await a.evaluate(async ([id, text]) => {
        const r = await fetch(`/api/clients/${id}/notes`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ text }) });
        if (!r.ok) throw new Error(await r.text());
      }, [id, text]);
      await b.locator('[data-panel="notes"] .data', { hasText: text }).waitFor({ timeout: 10000 });
      ms.push(Date.now() - t0);
    }
    ms.sort((x, y) => x - y);
    console.log(`latency edit->DOM ms: p50 ${ms[10]} p99 ${ms[19]} (20 edits)`);
  });
  await step('the add-case form says which required field is missing, next to it', async () => {
    await a.locator('[data-tab="cases"]').click();
    const f = a.locator('form[data-form="case"]');
    await f.waitFor();
    await f.locator('textarea[name="description"]').fill('La impresora no imprime');
    await f.getByRole('button', { name: 'Abrir caso' }).click();
    await f.locator('.error[data-for="title"]', { hasText: 'obligatorio' }).waitFor();
    await shot(a, 'case-missing-title');
    await f.locator('input[name="title"]').fill('No imprime');
    await f.getByRole('button', { name: 'Abrir caso' }).click();
    const said = f.locator('.error[data-for="_form"]:not(:empty)');
    await said.waitFor();
    const text = await said.textContent();
    if (!/Caso .+-\d+ abierto/.test(text)) throw new Error('the case was not opened: ' + text);
    await a.locator('[data-panel="cases"] .data', { hasText: 'No imprime' }).waitFor();
  });
  await step('a quick time entry', async () => {
    await a.locator('[data-tab="time"]').click();
    const f = a.locator('form[data-form="time"]');
    await f.locator('textarea[name="text"]').fill('Revisión de la instalación');
    await f.locator('input[name="minutes"]').fill('45');
    await f.getByRole('button', { name: 'Terminar' }).click();
    await f.locator('.error[data-for="_form"]', { hasText: 'Tiempo registrado' }).waitFor();
  });
  await step('a wallet spent twice offline shows the overdraft banner on both pages', async () => {
    const move = async (page, type, amount) => {
      await page.locator('[data-tab="wallet"]').click();
      const f = page.locator('form[data-form="wallet"]');
      await f.locator('select[name="type"]').selectOption(type);
      await f.locator('input[name="amount"]').fill(amount);
      await f.getByRole('button', { name: 'Registrar' }).click();
      await f.locator('.error[data-for="_form"]').waitFor({ state: 'hidden' });
    };
    await move(a, 'add_funds', '10.00EUR');
    await b.locator('[data-tab="wallet"]').click();
    await b.locator('#balance', { hasText: '10' }).waitFor({ timeout: 20000 });
    await a.locator('#offline').check();
    await b.locator('#offline').check();
    await move(a, 'deduct', '8.00EUR');
    await move(b, 'deduct', '8.00EUR');
    await a.locator('#offline').uncheck();
    await b.locator('#offline').uncheck();
    await a.locator('#overdraft').waitFor({ timeout: 20000 });
    await b.locator('#overdraft').waitFor({ timeout: 20000 });
    await shot(b, 'overdraft');
  });
  await step('an address added in the file and its city edited inline reach the other page', async () => {
    await a.locator('[data-tab="contact"]').click();
    const panel = a.locator('[data-panel="contact"]');
    await panel.locator('summary', { hasText: 'Direcciones' }).click();
    const f = panel.locator('form[data-form="item-addresses"]');
    await f.getByRole('button', { name: 'Añadir' }).click();
    await f.locator('.error[data-for="line1"]', { hasText: 'obligatorio' }).waitFor();
    await f.locator('select[name="kind"]').selectOption('billing');
    await f.locator('input[name="line1"]').fill('Calle Mayor 5');
    await f.getByRole('button', { name: 'Añadir' }).click();
    const row = panel.locator('tbody[data-section-rows="addresses"] tr', { hasText: 'Calle Mayor 5' });
    await row.waitFor();
    await row.locator('button.cell[data-field="city"]').click();
    const city = row.locator('.editing input');
    await city.fill('Sevilla');
    await city.press('Enter');
    await row.locator('button.cell[data-field="city"]', { hasText: 'Sevilla' }).waitFor();
    await b.locator('[data-tab="contact"]').click();
    await b.locator('tbody[data-section-rows="addresses"] tr', { hasText: 'Sevilla' }).waitFor({ timeout: 20000 });
  });
  await step('an appointment booked in the file shows as a date; its status is edited inline', async () => {
    await a.locator('[data-tab="appointments"]').click();
    const panel = a.locator('[data-panel="appointments"]');
    await panel.locator('summary', { hasText: 'Cita' }).first().click();
    const f = panel.locator('form[data-form="record-appointment"]');
    await f.locator('input[name="start"]').fill('2027-01-15T10:30');
    await f.locator('input[name="duration_min"]').fill('30');
    await f.getByRole('button', { name: 'Añadir' }).click();
    const row = panel.locator('tbody[data-kind-rows="appointment"] tr', { hasText: '15 ene 2027' });
    await row.waitFor();
    await row.locator('button.cell[data-field="status"]').click();
    await row.locator('.editing select').selectOption('done');
    await row.locator('button.cell[data-field="status"]', { hasText: 'Realizada' }).waitFor();
    await shot(a, 'appointments');
  });
  await step('a field of the general data edited inline, and a live update elsewhere keeps the editor', async () => {
    await a.locator('[data-tab="general"]').click();
    await a.locator('button.cell[data-edit-field="phone"]').click();
    const phone = a.locator('[data-panel="general"] .editing input');
    await phone.fill('+34 600 123 456');
    // An edit arriving meanwhile must not take the half-typed value away.
    await b.evaluate(async id => {
      await fetch(`/api/clients/${id}/notes`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ text: 'mientras tanto' }) });
    }, id);
    await a.locator('[data-panel="notes"] .data', { hasText: 'mientras tanto' }).waitFor({ state: 'attached', timeout: 20000 });
    if (await phone.inputValue() !== '+34 600 123 456') throw new Error('a live update took the edited value');
    await phone.press('Enter');
    await b.locator('[data-tab="general"]').click();
    await b.locator('button.cell[data-edit-field="phone"]', { hasText: '+34 600 123 456' }).waitFor({ timeout: 20000 });
  });
  await step('the page in English and in Spanish', async () => {
    await a.goto(`${A}/clients?lang=en`);
    if (await a.evaluate(() => document.documentElement.lang) !== 'en') throw new Error('lang is not en');
    await a.locator('header nav a', { hasText: 'Clients' }).waitFor();
    await a.locator('th button', { hasText: 'Last update' }).waitFor();
    await a.goto(`${A}/clients?lang=es`);
    if (await a.evaluate(() => document.documentElement.lang) !== 'es') throw new Error('lang is not es');
    await a.locator('th button', { hasText: 'Última actualización' }).waitFor();
  });
  await step('every input has a label, and the page fits 390 px', async () => {
    await a.goto(`${A}/clients/${id}`);
    await a.locator('#name', { hasText: 'Marta' }).waitFor();
    const unlabelled = await a.evaluate(() => [...document.querySelectorAll('input, select, textarea')]
      .filter(el => el.type !== 'hidden' && !el.labels?.length && !el.getAttribute('aria-label')).map(el => el.name || el.id));
    if (unlabelled.length) throw new Error('inputs without a label: ' + unlabelled.join(', '));
    await a.setViewportSize({ width: 390, height: 844 });
    const wide = await a.evaluate(() => document.documentElement.scrollWidth);
    await shot(a, 'file-390px');
    if (wide > 400) throw new Error(`the page is ${wide} px wide at 390 px`);
  });
  await step("the relay's admin page: sign-in, connected replicas, a token, a backup", async () => {
    const r = await ctx.newPage();
    await r.goto(env('RELAY_ADMIN'));
    await r.getByLabel('Clave de administración').fill('not-the-key');
    await r.getByRole('button', { name: 'Entrar' }).click();
    await r.locator('#signin-error', { hasText: 'no es válida' }).waitFor();
    await r.getByLabel('Clave de administración').fill(env('ADMIN_KEY'));
    await r.getByRole('button', { name: 'Entrar' }).click();
    await r.locator('#sessions tr', { hasText: 'branch-a' }).waitFor();
    await r.locator('#sessions tr', { hasText: 'branch-b' }).waitFor();
    await r.locator('#companies tr', { hasText: 'acme' }).waitFor();
    const docs = Number((await r.locator('#companies tr', { hasText: 'acme' }).locator('td').nth(1).textContent()).replace(/\D/g, ''));
    if (!(docs >= 1)) throw new Error(`acme shows ${docs} documents`);
    const f = r.locator('form#token');
    await f.getByLabel('Réplica').fill('portatil-consultor');
    await f.getByLabel('Empresas (separadas por comas)').fill('acme');
    await f.getByRole('button', { name: 'Emitir token' }).click();
    const token = r.locator('#token-text');
    await token.waitFor();
    await r.waitForFunction(() => document.querySelector('#token-text').value.length > 20);
    console.log('admin token ' + await token.inputValue());
    await r.locator('form#backup input').fill(env('BACKUP'));
    await r.getByRole('button', { name: 'Hacer copia' }).click();
    await r.locator('#backup-out', { hasText: 'backup written' }).waitFor();
    await shot(r, 'relay-admin');
    await r.close();
  });
  await step('when ficha serve stops, the page says so and keeps what was typed', async () => {
    await a.setViewportSize({ width: 1280, height: 800 });
    await a.locator('[data-tab="notes"]').click();
    process.kill(Number(env('A_PID')), 'SIGKILL');
    const f = a.locator('form[data-form="note"]');
    await f.locator('textarea').fill('Escrita con el servidor parado');
    await f.locator('button', { hasText: 'Añadir nota' }).click();
    await a.locator('#server', { hasText: 'no responde' }).waitFor();
    await f.locator('.retry').waitFor();
    if (await f.locator('textarea').inputValue() !== 'Escrita con el servidor parado') throw new Error('the typed note was lost');
    await shot(a, 'server-stopped');
  });
} finally {
  await ctx.close();
}
