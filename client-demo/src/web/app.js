'use strict';
// The replica's web app: plain JavaScript over the local JSON API. Views re-read the API when
// the server pushes a change (GET /api/events) and patch only the nodes whose content changed,
// so focus, selection and scroll stay where the person left them.

const params = new URLSearchParams(location.search);
let lang = params.get('lang') || localStorage.getItem('ficha.lang') || 'es';
if (!MESSAGES[lang]) lang = 'es';
const t = (key, vars = {}) => {
  const s = MESSAGES[lang][key] ?? MESSAGES.es[key] ?? key;
  return s.replace(/\{(\w+)\}/g, (_, k) => vars[k] ?? '');
};
const locale = () => (lang === 'es' ? 'es-ES' : 'en-GB');
// Client data is user input: it never becomes markup.
const esc = v => String(v ?? '').replace(/[&<>"']/g, c => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c]));
// The replica's time zone (from /api/status); undefined: the browser's.
let timeZone;
const fmtDate = v => {
  if (v === null || v === undefined || v === '') return '';
  const d = new Date(v);
  if (isNaN(d)) return String(v);
  // A day is a day everywhere: "2026-12-03" parses as UTC midnight, so it is shown in UTC.
  const dateOnly = typeof v === 'string' && /^\d{4}-\d{2}-\d{2}$/.test(v);
  return new Intl.DateTimeFormat(locale(), dateOnly ? { dateStyle: 'medium', timeZone: 'UTC' } : { dateStyle: 'medium', timeStyle: 'short', timeZone }).format(d);
};
// The wall clock of an instant in the page's time zone.
function wallClock(ms) {
  const parts = new Intl.DateTimeFormat('en-GB', { timeZone, hourCycle: 'h23', year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit' })
    .formatToParts(new Date(ms));
  return Object.fromEntries(parts.map(p => [p.type, p.value]));
}
// An instant as a datetime-local input shows it: "YYYY-MM-DDTHH:MM" in the page's time zone.
function toWallTime(v) {
  const d = new Date(v);
  if (isNaN(d)) return '';
  const p = wallClock(d.getTime());
  return `${p.year}-${p.month}-${p.day}T${p.hour}:${p.minute}`;
}
// The instant a datetime-local input's "YYYY-MM-DDTHH:MM" names in the page's time zone:
// start from the wall time read as UTC and move by the zone's offset (twice, for DST edges).
function fromWallTime(s) {
  const [y, mo, d, h, mi] = s.split(/[-T:]/).map(Number);
  const want = Date.UTC(y, mo - 1, d, h, mi);
  let at = want;
  for (let i = 0; i < 2; i++) {
    const p = wallClock(at);
    at += want - Date.UTC(+p.year, +p.month - 1, +p.day, +p.hour, +p.minute);
  }
  return new Date(at).toISOString();
}
// Today in the page's time zone, as "YYYY-MM-DD".
const today = () => toWallTime(Date.now()).slice(0, 10);
// Money is kept in minor units per currency ({"EUR": 12345}).
const fmtMoney = totals => Object.entries(totals || {})
  .map(([cur, minor]) => new Intl.NumberFormat(locale(), { style: 'currency', currency: cur }).format(minor / 100))
  .join(' · ');
const $ = (sel, root = document) => root.querySelector(sel);

// ---- The link to the local server ----------------------------------------------------------
class Offline extends Error {}
let serverUp = true;
function setServer(up) {
  serverUp = up;
  const el = $('#server');
  el.hidden = up;
  el.textContent = up ? '' : t('server.down');
}
async function api(path, opts = {}) {
  const init = { credentials: 'same-origin', ...opts };
  if (opts.body !== undefined && typeof opts.body !== 'string') {
    init.body = JSON.stringify(opts.body);
    init.headers = { 'content-type': 'application/json', ...(opts.headers || {}) };
  }
  let r;
  try { r = await fetch(path, init); } catch (e) { setServer(false); throw new Offline(t('server.down')); }
  setServer(true);
  const body = await r.json().catch(() => ({}));
  if (r.status === 401) { askSignIn(); throw new Error(body.error || 'sign in'); }
  if (!r.ok) { const e = new Error(body.error || r.statusText); e.body = body; throw e; }
  return body;
}

// ---- Forms: labels, required fields, messages next to the field, drafts kept -----------------
// A form's draft is kept in localStorage as it is typed, so a server that stopped, or a reload,
// loses nothing; it is cleared when the server has saved it.
function draftKey(form) { return 'ficha.draft.' + location.pathname + '.' + form.dataset.form; }
function keepDrafts(form) {
  const saved = JSON.parse(localStorage.getItem(draftKey(form)) || '{}');
  for (const [k, v] of Object.entries(saved)) { const el = form.elements[k]; if (el && el.type !== 'checkbox' && !el.value) el.value = v; }
  form.addEventListener('input', () => {
    const data = Object.fromEntries([...new FormData(form)].filter(([, v]) => typeof v === 'string'));
    localStorage.setItem(draftKey(form), JSON.stringify(data));
  });
}
function fieldError(form, name, text) {
  const p = form.querySelector(`.error[data-for="${CSS.escape(name)}"]`);
  if (p) p.textContent = text || '';
}
function clearErrors(form) { form.querySelectorAll('.error').forEach(p => { p.textContent = ''; }); }
// Wires a form: checks required fields itself (a message per field), sends, and on failure
// keeps what was typed and shows the server's words next to the fields they name.
function onSubmit(form, send) {
  form.noValidate = true;
  keepDrafts(form);
  form.addEventListener('submit', async e => {
    e.preventDefault();
    clearErrors(form);
    let missing = false;
    for (const el of form.elements) {
      if (el.required && !String(el.value).trim()) { fieldError(form, el.name, t('required')); missing = true; }
    }
    if (missing) { form.querySelector('.error:not(:empty)')?.previousElementSibling?.focus?.(); return; }
    const data = Object.fromEntries([...new FormData(form)].filter(([, v]) => v !== ''));
    for (const el of form.elements) if (el.type === 'checkbox' && el.name) data[el.name] = el.checked;
    try {
      const done = await send(data);
      localStorage.removeItem(draftKey(form));
      form.reset();
      fieldError(form, '_form', typeof done === 'string' ? done : '');
      refresh();
    } catch (err) {
      const msg = err.message;
      let placed = false;
      for (const el of form.elements) {
        if (el.name && new RegExp(`\\b${el.name}\\b`).test(msg)) { fieldError(form, el.name, msg); placed = true; }
      }
      if (!placed) fieldError(form, '_form', msg);
      if (err instanceof Offline) form.querySelector('.retry').hidden = false;
    }
  });
}
function input(name, label, { type = 'text', required = false, options = null, value = '' } = {}) {
  const id = 'f-' + name + '-' + Math.random().toString(36).slice(2, 7);
  let control;
  if (options) {
    control = `<select id="${id}" name="${esc(name)}"${required ? ' required' : ''}>${required ? '' : '<option value=""></option>'}${options.map(([v, l]) => `<option value="${esc(v)}"${v === value ? ' selected' : ''}>${esc(l)}</option>`).join('')}</select>`;
  } else if (type === 'textarea') {
    control = `<textarea id="${id}" name="${esc(name)}" rows="3"${required ? ' required' : ''}>${esc(value)}</textarea>`;
  } else {
    control = `<input id="${id}" name="${esc(name)}" type="${type}" value="${esc(value)}"${required ? ' required' : ''}>`;
  }
  return `<div><label for="${id}">${esc(label)}${required ? ' *' : ''}</label>${control}<p class="error" data-for="${esc(name)}"></p></div>`;
}
function form(name, fields, submit) {
  return `<form class="grid" data-form="${esc(name)}">${fields.join('')}<div><button>${esc(submit)}</button> <button type="submit" class="retry" hidden>${esc(t('retry'))}</button><p class="error" data-for="_form"></p></div></form>`;
}

// ---- Patching: only what changed is replaced -----------------------------------------------
function patch(container, items) {
  // items: [key, html]; a child whose html is unchanged is left alone.
  const existing = new Map([...container.children].map(el => [el.dataset.key, el]));
  let prev = null;
  for (const [key, html] of items) {
    let el = existing.get(key);
    // A row someone is editing stays as it is until they save or cancel.
    if (el && el.querySelector('.editing')) { existing.delete(key); prev = el; continue; }
    if (!el || el.dataset.html !== html) {
      const tpl = document.createElement('template');
      tpl.innerHTML = html.trim();
      const fresh = tpl.content.firstElementChild;
      fresh.dataset.key = key; fresh.dataset.html = html;
      if (el) el.replaceWith(fresh); else container.insertBefore(fresh, prev ? prev.nextSibling : container.firstChild);
      el = fresh;
    } else if (el.previousElementSibling !== prev) {
      container.insertBefore(el, prev ? prev.nextSibling : container.firstChild);
    }
    existing.delete(key);
    prev = el;
  }
  for (const el of existing.values()) el.remove();
}
function setText(el, text) { if (el && el.textContent !== text) el.textContent = text; }
function setHtml(el, html) { if (el && el.dataset.html !== html) { el.innerHTML = html; el.dataset.html = html; } }

// ---- Who is signed in, and the status line ---------------------------------------------------
let me = null;
function askSignIn() { const d = $('#signin'); if (!d.open) d.showModal(); }
$('#signin-form').addEventListener('submit', async e => {
  e.preventDefault();
  const data = Object.fromEntries(new FormData(e.target));
  try {
    await api('/api/session', { method: 'POST', body: data });
    $('#signin').close(); e.target.reset(); refresh();
  } catch (err) { fieldError(e.target, 'signin', err.message); }
});
// The employee whose own language the page took on signing in: once per sign-in, so a
// choice made later on this page is not undone by the next refresh.
let langOf = null;
async function showWho() {
  me = await api('/api/session');
  const id = me.employee?.id ?? null;
  if (id !== langOf) {
    langOf = id;
    if (id && me.language && !params.get('lang') && me.language !== lang) {
      lang = me.language; localStorage.setItem('ficha.lang', lang); applyLang(); route();
    }
  }
  const name = me.employee ? `${me.employee.name ?? me.employee} (${me.role})` : me.replica;
  setHtml($('#who'), `${esc(t('signin.as'))} <b>${esc(name)}</b>${me.employee ? ` <button id="signout">${esc(t('signin.out'))}</button>` : ''}`);
  document.body.dataset.role = me.role || 'replica';
}
document.addEventListener('click', async e => {
  if (e.target.id === 'signout') { await api('/api/session', { method: 'DELETE' }); me = null; askSignIn(); }
});
async function showStatus() {
  const s = await api('/api/status');
  timeZone = s.time_zone || undefined;
  // A status read before the switch's own request landed must not flip the box back.
  if (!switching) $('#offline').checked = !!s.offline;
  const online = s.relay === 'connected';
  const link = online ? `<span class="online">● ${esc(t('status.online'))}</span>`
    : `<span class="offline">● ${esc(t(s.offline ? 'status.cut' : 'status.offline'))}</span>`;
  const parts = [link, `${s.pending_upload} ${esc(t('status.pending'))}`];
  if (s.refused?.length) parts.push(`${s.refused.length} ${esc(t('status.refused'))}`);
  parts.push(`${esc(t('status.last_sync'))}: ${s.last_sync_at ? esc(fmtDate(s.last_sync_at)) : esc(t('status.never'))}`);
  if (s.last_error) parts.push(`${esc(t('status.error'))}: ${esc(s.last_error)}`);
  setHtml($('#status'), `<b>${esc(s.replica)}</b> · ` + parts.join(' · '));
}
let switching = false;
$('#offline').addEventListener('change', async e => {
  switching = true;
  try { await api('/api/sync', { method: 'POST', body: { online: !e.target.checked } }); } finally { switching = false; }
  refresh();
});

// ---- Views ---------------------------------------------------------------------------------
const PAGE = 50;
let view = null;
function go(path) { history.pushState(null, '', path + (lang !== 'es' && params.get('lang') ? `?lang=${lang}` : '')); route(); }
document.addEventListener('click', e => {
  const a = e.target.closest('a[data-nav]');
  if (a && !e.metaKey && !e.ctrlKey) { e.preventDefault(); go(a.getAttribute('href')); }
});
window.addEventListener('popstate', route);

function listView(state) {
  let offset = 0, sort = 'name';
  const root = $('#view');
  root.innerHTML = `
    <h1>${esc(t(state === 'archived' ? 'nav.archive' : state === 'trashed' ? 'nav.trash' : 'nav.clients'))}</h1>
    <div class="metrics" id="metrics"></div>
    <form id="filters" class="grid" role="search">
      ${input('search', t('list.search'), { type: 'search' })}
      ${input('company', t('list.company'))}
      ${input('centre', t('list.centre'))}
      ${input('origin', t('list.origin'))}
      ${input('group', t('list.group'))}
      ${input('since', t('list.since'), { type: 'date' })}
      ${input('until', t('list.until'), { type: 'date' })}
      ${input('services', t('list.services'), { options: ['with', 'without', 'cancelled'].map(v => [v, t('list.services.' + v)]) })}
      ${input('service_type', t('list.service_type'))}
      ${input('upcoming', t('list.upcoming'), { type: 'checkbox', value: 'true' })}
    </form>
    <div class="pager"><span id="count" aria-live="polite"></span>
      <button id="prev">${esc(t('list.prev'))}</button><button id="next">${esc(t('list.next'))}</button>
      <label class="inline">${esc(t('list.bulk'))}<select id="bulk"><option value=""></option>
        ${(state === 'active' ? ['archive', 'trash'] : ['restore']).map(a => `<option value="${a}">${esc(t('action.' + a))}</option>`).join('')}</select></label>
      <span id="bulk-done" role="status"></span></div>
    <table class="clients"><thead><tr><th><span class="sr">${esc(t('list.select'))}</span></th>
      ${[['name', 'col.name'], ['phone', 'col.phone'], ['email', 'col.email'], ['centre', 'col.centre'], ['company', 'col.company'], ['sales', 'col.sales'], ['updated', 'col.updated']]
        .map(([k, l]) => `<th><button data-sort="${k}">${esc(t(l))}</button></th>`).join('')}</tr></thead><tbody id="rows"></tbody></table>
    ${state === 'active' ? `<h2>${esc(t('new.title'))}</h2>` + form('new-client', [
      input('company', t('field.company'), { required: true, value: me?.company || '' }),
      input('name', t('field.name'), { required: true }),
      input('email', t('field.email'), { type: 'email' }),
      input('phone', t('field.phone'), { type: 'tel' })], t('new.submit')) + '<div id="similar" role="status"></div>' : ''}`;
  const filters = $('#filters');
  filters.addEventListener('input', () => { offset = 0; load(); });
  filters.addEventListener('submit', e => e.preventDefault());
  $('#prev').onclick = () => { offset = Math.max(0, offset - PAGE); load(); };
  $('#next').onclick = () => { offset += PAGE; load(); };
  root.querySelectorAll('th button[data-sort]').forEach(b => b.onclick = () => {
    const k = { updated: 'created', sales: 'name', centre: 'name', phone: 'name', email: 'name', company: 'name' }[b.dataset.sort] || b.dataset.sort;
    sort = sort === k ? k + '-desc' : k; load();
  });
  const nf = root.querySelector('form[data-form="new-client"]');
  if (nf) {
    onSubmit(nf, async data => {
      const r = await api('/api/clients', { method: 'POST', body: data });
      go('/clients/' + r.id);
    });
    // Before creating: who already in this company shares the email, phone or tax id.
    let asked = 0;
    nf.addEventListener('input', async () => {
      const mine = ++asked;
      const q = new URLSearchParams([...new FormData(nf)].filter(([, v]) => v));
      const found = q.get('company') && (q.get('email') || q.get('phone')) ? await api('/api/clients/similar?' + q).catch(() => []) : [];
      if (mine !== asked) return;
      setHtml($('#similar'), found.length ? `<p class="warning">${esc(t('dup.warning'))}</p>${similarList(found)}` : '');
    });
  }
  $('#bulk').onchange = async e => {
    const action = e.target.value; e.target.value = '';
    const ids = [...root.querySelectorAll('input[data-pick]:checked')].map(c => c.dataset.pick);
    if (!action || !ids.length) return;
    if (!confirm(t('list.confirm', { action: t('action.' + action), n: ids.length }))) return;
    const done = $('#bulk-done');
    try {
      await api('/api/clients/bulk', { method: 'POST', body: { action, ids } });
    } catch (err) {
      // Nothing changed: say why (a likely duplicate of a reactivation), and offer to go ahead.
      done.innerHTML = (`<span class="warning">${esc(t('state.refused'))} ${esc(err.message)}</span>`
        + (action === 'restore' ? ` <button id="bulk-force">${esc(t('state.force'))}</button>` : ''));
      const f = $('#bulk-force');
      if (f) f.onclick = async () => { await api('/api/clients/bulk', { method: 'POST', body: { action, ids, force: true } }); done.textContent = ''; load(); };
      return;
    }
    const undo = { archive: 'restore', trash: 'restore', restore: state === 'trashed' ? 'trash' : 'archive' }[action];
    done.innerHTML = `${esc(t('list.done', { n: ids.length, action: t('action.' + action) }))} <button>${esc(t('undo'))}</button>`;
    done.querySelector('button').onclick = async () => { await api('/api/clients/bulk', { method: 'POST', body: { action: undo, ids, force: true } }); done.textContent = ''; load(); };
    load();
  };
  async function load() {
    // The view may be drawn before the session is read: the company comes when it is known.
    const company = root.querySelector('form[data-form="new-client"]')?.elements.company;
    if (company && !company.value && me?.company) company.value = me.company;
    const q = new URLSearchParams([...new FormData(filters)].filter(([, v]) => v));
    q.set('state', state);
    const mq = new URLSearchParams(q);
    q.set('offset', offset); q.set('limit', PAGE); q.set('sort', sort);
    const [rows, m] = await Promise.all([api('/api/clients?' + q), api('/api/metrics?' + mq)]);
    const nf = new Intl.NumberFormat(locale());
    setText($('#count'), rows.length ? t('list.count', { shown: nf.format(offset + rows.length), total: nf.format(m.total_clients) }) : t('list.none'));
    $('#prev').disabled = offset === 0;
    $('#next').disabled = offset + rows.length >= m.total_clients;
    setHtml($('#metrics'), [['list.total_clients', nf.format(m.total_clients)], ['list.reviews', nf.format(m.total_reviews)],
      ['list.rating', m.average_rating == null ? '–' : nf.format(m.average_rating)], ['list.sales', fmtMoney(m.total_sales) || '–']]
      .map(([k, v]) => `<div>${esc(t(k))}<b>${esc(v)}</b></div>`).join(''));
    patch($('#rows'), rows.map(c => [c.id, `<tr><td><input type="checkbox" data-pick="${esc(c.id)}" aria-label="${esc(t('list.select'))} ${esc(c.name)}"></td>
      <td><a href="/clients/${esc(c.id)}" data-nav>${esc(c.name)}</a></td><td>${esc(c.phone)}</td><td>${esc(c.email)}</td>
      <td>${esc(c.home_centre)}</td><td>${esc(c.company)}</td><td>${esc(fmtMoney(c.sales_total))}</td><td>${esc(fmtDate(c.last_update))}</td></tr>`]));
  }
  return load;
}

// Clients that may be one person with another, each linked, with what they share.
function similarList(found) {
  return `<ul>${found.map(f => `<li><a href="/clients/${esc(f.client.id)}" data-nav>${esc(f.client.name)}</a> (${f.reasons.map(r => esc(t('dup.same', { what: t('dup.what.' + r) }))).join(', ')})</li>`).join('')}</ul>`;
}
// The active clients a client to reactivate may duplicate (what the relay's rule refused).
async function activeDoubles(c) {
  const q = new URLSearchParams({ company: c.company, name: c.name });
  for (const [k, v] of [['email', c.email], ['phone', c.phone], ['tax_id', c.profile?.tax_id], ['birth_date', c.profile?.birth_date]]) if (v) q.set(k, v);
  const found = await api('/api/clients/similar?' + q).catch(() => []);
  return found.filter(f => f.client.id !== c.id && f.client.state === 'active');
}

function duplicatesView() {
  $('#view').innerHTML = `<h1>${esc(t('dup.title'))}</h1><div id="dups"></div>`;
  return async () => {
    const d = await api('/api/duplicates');
    const pairs = Array.isArray(d) ? d : (d.pairs || d.candidates || []);
    patch($('#dups'), pairs.length ? pairs.map(p => {
      const a = p.a || p.left || p[0], b = p.b || p.right || p[1];
      return [`${a.id}-${b.id}`, `<div class="pair"><table><tr><th>${esc(a.name)}</th><th>${esc(b.name)}</th></tr>
        <tr><td>${esc(a.email)} ${esc(a.phone)}</td><td>${esc(b.email)} ${esc(b.phone)}</td></tr></table>
        <button data-merge="${esc(a.id)}" data-other="${esc(b.id)}">${esc(t('dup.merge'))}</button>
        <button data-dismiss="${esc(a.id)}" data-other="${esc(b.id)}">${esc(t('dup.dismiss'))}</button></div>`];
    }) : [['none', `<p>${esc(t('dup.none'))}</p>`]]);
  };
}
document.addEventListener('click', async e => {
  const m = e.target.closest('[data-merge]'), d = e.target.closest('[data-dismiss]');
  if (m) { await api('/api/duplicates/merge', { method: 'POST', body: { survivor: m.dataset.merge, other: m.dataset.other } }); refresh(); }
  if (d) { await api('/api/duplicates/dismiss', { method: 'POST', body: { a: d.dataset.dismiss, b: d.dataset.other } }); refresh(); }
});

function notificationsView() {
  $('#view').innerHTML = `<h1>${esc(t('notif.title'))}</h1><div id="notifs"></div>`;
  return async () => {
    const n = await api('/api/notifications').catch(() => []);
    patch($('#notifs'), n.length ? n.map(x => [x.id, `<p>${esc(x.text || x.kind)} ${esc(x.case_number || '')} <button data-read="${esc(x.id)}">${esc(t('notif.read'))}</button></p>`])
      : [['none', `<p>${esc(t('notif.none'))}</p>`]]);
  };
}
document.addEventListener('click', async e => {
  const r = e.target.closest('[data-read]');
  if (r) { await api(`/api/notifications/${encodeURIComponent(r.dataset.read)}/read`, { method: 'POST', body: {} }); refresh(); }
});

function route() {
  const p = location.pathname;
  const m = p.match(/^\/clients\/([^/]+)$/);
  if (m) view = fileView(decodeURIComponent(m[1]));
  else if (p === '/archive') view = listView('archived');
  else if (p === '/trash') view = listView('trashed');
  else if (p === '/duplicates') view = duplicatesView();
  else if (p === '/notifications') view = notificationsView();
  else view = listView('active');
  refresh();
}

// ---- Live: one refresh at a time, the latest wins -------------------------------------------
let running = null, again = false;
async function refresh() {
  if (running) { again = true; return running; }
  running = (async () => {
    do {
      again = false;
      try { await showWho(); await showStatus(); if (view) await view(); } catch (e) { if (!(e instanceof Offline)) console.warn(e); }
    } while (again);
  })();
  try { await running; } finally { running = null; }
}
function live() {
  const es = new EventSource('/api/events');
  es.addEventListener('change', () => refresh());
  es.onopen = () => { setServer(true); refresh(); };
  es.onerror = () => { setServer(false); setHtml($('#status'), `<span class="offline">● ${esc(t('server.down'))}</span>`); };
}
document.addEventListener('click', e => { if (e.target.classList.contains('retry')) setServer(true); });

// ---- Language, keyboard --------------------------------------------------------------------
function applyLang() {
  document.documentElement.lang = lang;
  $('#lang').value = lang;
  document.querySelectorAll('[data-t]').forEach(el => { el.textContent = t(el.dataset.t); });
}
$('#lang').addEventListener('change', async e => {
  lang = e.target.value; localStorage.setItem('ficha.lang', lang); applyLang(); route();
  // A signed-in employee keeps the choice in their record, for every replica they use.
  if (me?.employee) await api('/api/session/language', { method: 'POST', body: { language: lang } }).catch(err => console.warn(err));
});
document.addEventListener('keydown', e => {
  const typing = /^(INPUT|TEXTAREA|SELECT)$/.test(document.activeElement?.tagName);
  if (e.key === '/' && !typing) { const s = $('input[name="search"]'); if (s) { e.preventDefault(); s.focus(); } }
  if (e.key === 'Escape') { const d = $('#signin'); if (d.open) d.close(); document.activeElement?.blur?.(); }
});

applyLang();
route();
live();
