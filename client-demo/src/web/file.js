'use strict';
// The client file: its tabs, and the generic parts every collection and record kind shares.
// Which tabs exist and what each holds comes from the replica's own registries (GET
// /api/sections and /api/kinds), so a new field or kind shows up here without a line of markup.
// Loaded before app.js, whose helpers (t, esc, api, patch, form, input…) these functions use.

// A tab is fixed (its own renderer in fileView), or a list of collections of the client
// document (`sections`) and of record kinds linked to the client (`kinds`).
const FILE_TABS = [
  { key: 'general' },
  { key: 'contact', sections: ['emails', 'phones', 'addresses'] },
  { key: 'notes' }, { key: 'comments' }, { key: 'alerts' },
  { key: 'clinical', sections: ['allergies', 'skin_tests'] },
  { key: 'appointments', kinds: ['appointment', 'calendar_activity'] },
  { key: 'procedures', kinds: ['procedure'] },
  { key: 'billing', kinds: ['invoice', 'quote', 'transaction', 'credit_note', 'payment_receipt', 'sales_order'], statement: true },
  { key: 'wallet' },
  { key: 'services', kinds: ['service', 'solution', 'policy', 'asset', 'product'] },
  { key: 'cases' }, { key: 'time' },
  { key: 'reviews', sections: ['reviews'] },
  { key: 'contacts', sections: ['contacts'] },
  { key: 'files', sections: ['files'] },
  { key: 'relations' }, { key: 'messages' }, { key: 'activity' },
  { key: 'more', rest: true },
];
// Kinds the file shows in tabs of their own, or that are not the client's (company-level).
const OWN_TAB_KINDS = ['case', 'time_entry', 'wallet_movement', 'relation', 'message', 'employee'];

// A label for a field: the page's own words if it has them, else the name made readable.
function fieldLabel(name) {
  const k = 'field.' + name;
  const s = t(k);
  return s === k ? name.replace(/_/g, ' ').replace(/^./, c => c.toUpperCase()) : s;
}
function kindLabel(kind) { return lang === 'es' ? kind.label : (kind.label_en || kind.label); }

// What a cell shows: dates as dates, money with its currency, booleans as words.
function shown(value, type) {
  if (value === null || value === undefined || value === '') return '';
  if (type === 'bool' || type === 'boolean' || typeof value === 'boolean') return t(value ? 'yes' : 'no');
  if (type === 'money' && typeof value === 'object') return fmtMoney({ [value.currency]: value.amount ?? value.minor });
  if (type === 'date' || type === 'date_time') return fmtDate(value);
  if (type === 'enum') return t('value.' + value) === 'value.' + value ? String(value) : t('value.' + value);
  if (type === 'rating') return '★'.repeat(Number(value)) + '☆'.repeat(Math.max(0, 5 - Number(value)));
  if (Array.isArray(value)) return value.join(', ');
  if (typeof value === 'object') return JSON.stringify(value);
  return String(value);
}

// The control for one field, in a form or in a cell being edited.
function fieldInput(f, value = '', options = null) {
  const type = { date: 'date', date_time: 'datetime-local', integer: 'number', rating: 'number', long_text: 'textarea' }[f.type] || 'text';
  let opts = options;
  if (!opts && f.type === 'enum') opts = f.values.map(v => [v, shown(v, 'enum')]);
  if (!opts && (f.type === 'bool' || f.type === 'boolean')) opts = [['true', t('yes')], ['false', t('no')]];
  const shownValue = value == null ? '' : f.type === 'date_time' && value ? toWallTime(value) : String(value);
  return input(f.name, fieldLabel(f.name), { required: f.required, options: opts, type, value: shownValue });
}

// What a form or an editor gives, in the shape the API takes for that field.
function given(f, raw) {
  if (raw === '' || raw === undefined) return raw;
  if (f.type === 'date_time' && /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}$/.test(raw)) return fromWallTime(raw);
  if (f.type === 'integer' || f.type === 'rating') return Number(raw);
  if (f.type === 'bool' || f.type === 'boolean') return raw === 'true';
  return raw;
}
function givenAll(fields, data) {
  const out = {};
  for (const [k, v] of Object.entries(data)) {
    const f = fields.find(x => x.name === k);
    out[k] = f ? given(f, v) : v;
  }
  return out;
}

// Inline edit: a cell is a button; clicked, it becomes its field's control until Enter (save)
// or Esc (cancel). A row being edited is left alone by live updates (see `patch`).
function editable(value, type, attrs) {
  const a = Object.entries(attrs).map(([k, v]) => `data-${k}="${esc(v)}"`).join(' ');
  return `<button type="button" class="cell" ${a} title="${esc(t('file.edit'))}">${esc(shown(value, type)) || '<span class="muted">—</span>'}</button>`;
}
function startEdit(btn, f, value, save) {
  const wrap = document.createElement('div');
  wrap.className = 'editing';
  wrap.innerHTML = fieldInput({ ...f, required: false }, value) ;
  const control = wrap.querySelector('input, select, textarea');
  const error = wrap.querySelector('.error');
  btn.replaceWith(wrap);
  control.focus();
  const close = () => { wrap.remove(); refresh(); };
  const commit = async () => {
    try { await save(given(f, control.value)); close(); } catch (e) { error.textContent = e.message; control.focus(); }
  };
  control.addEventListener('keydown', e => {
    if (e.key === 'Enter' && control.tagName !== 'TEXTAREA') { e.preventDefault(); commit(); }
    if (e.key === 'Enter' && control.tagName === 'TEXTAREA' && (e.ctrlKey || e.metaKey)) { e.preventDefault(); commit(); }
    if (e.key === 'Escape') { e.stopPropagation(); close(); }
  });
  if (control.tagName === 'SELECT') control.addEventListener('change', commit);
}

// One collection of the client document as a table, with inline edit, add and remove.
function sectionBlock(sec, c, enc, canWrite) {
  const items = c[sec.section] || [];
  const cols = sec.fields.filter(f => sec.section !== 'files' || ['name', 'mime', 'size'].includes(f.name));
  const rows = items.map(it => {
    const thumb = sec.section === 'files'
      ? (it.kind === 'image' || String(it.mime || '').startsWith('image/')
        ? `<td><a href="/api/clients/${enc}/files/${esc(it.id)}" target="_blank"><img class="thumb" loading="lazy" alt="${esc(it.name)}" src="/api/clients/${enc}/files/${esc(it.id)}"></a></td>`
        : `<td><a href="/api/clients/${enc}/files/${esc(it.id)}">${esc(t('file.download'))}</a></td>`) : '';
    const cells = cols.map(f => `<td>${canWrite && sec.section !== 'files'
      ? editable(it[f.name], f.type, { 'edit-item': it.id, section: sec.section, field: f.name })
      : esc(shown(it[f.name], f.type))}</td>`).join('');
    const off = sec.clinical ? (it.active === false ? `<td>${esc(t('file.inactive'))}</td>`
      : `<td>${canWrite ? `<button data-deactivate="${esc(it.id)}" data-section="${sec.section}">${esc(t('file.deactivate'))}</button>` : ''}</td>`)
      : `<td>${canWrite ? `<button data-remove="${esc(it.id)}" data-section="${sec.section}">${esc(t('file.remove'))}</button>` : ''}</td>`;
    return `<tr data-item="${esc(it.id)}">${thumb}${cells}${off}</tr>`;
  });
  const head = `${sec.section === 'files' ? '<th></th>' : ''}${cols.map(f => `<th>${esc(fieldLabel(f.name))}</th>`).join('')}<th></th>`;
  return { head, rows: items.map((it, i) => [it.id, rows[i]]) };
}

// A record's value of a field; a total is computed from the lines, not stored.
const valueOf = (r, f) => (f.name === 'total' ? r.total : r.fields?.[f.name]);

// One kind of record linked to the client, as a table with inline edit.
function kindRows(kind, records, canWrite) {
  const cols = kind.fields.filter(f => !f.system && f.type !== 'lines' && f.type !== 'long_text' && f.type !== 'reference').slice(0, 7);
  const head = cols.map(f => `<th>${esc(fieldLabel(f.name))}</th>`).join('');
  const now = today();
  const rows = records.map(r => {
    const cells = cols.map(f => `<td>${canWrite
      ? editable(valueOf(r, f), f.type, { 'edit-record': r.id, kind: kind.kind, field: f.name })
      : esc(shown(valueOf(r, f), f.type))}</td>`).join('');
    const upcoming = kind.date && r.date && String(r.date).slice(0, 10) >= now;
    return [r.id, `<tr data-record="${esc(r.id)}" class="${upcoming ? 'upcoming' : ''}">${cells}</tr>`];
  });
  return { head, rows };
}

// The add form of a collection or a kind, from its fields.
async function addForm(spec, fields, refOptions) {
  const controls = [];
  for (const f of fields) {
    if (f.system || f.type === 'lines') continue;
    const options = f.type === 'reference' ? await refOptions(f.references) : null;
    controls.push(fieldInput(f, f.default || '', options));
  }
  return form(spec, controls, t('file.add'));
}

// ---- The client file -----------------------------------------------------------------------
const MOVE_TO = { archive: 'archived', trash: 'trashed', restore: 'active' };
// Moves the open client to another state; a refused reactivation (a likely duplicate among the
// active clients) shows why, with the choice to go ahead after checking.
document.addEventListener('click', async e => {
  const b = e.target.closest('[data-move]');
  if (!b) return;
  const id = decodeURIComponent(location.pathname.split('/')[2] || '');
  const action = b.dataset.move, force = b.dataset.force === 'true';
  const msg = $('#state-msg');
  try {
    await api(`/api/clients/${encodeURIComponent(id)}/state`, { method: 'POST', body: { state: MOVE_TO[action], force } });
    msg.textContent = t('state.done', { action: t('action.' + action) });
  } catch (err) {
    // Said in the page's words when the refusal is a likely duplicate: who, and what they share.
    const c = action === 'restore' ? await api(`/api/clients/${encodeURIComponent(id)}`).catch(() => null) : null;
    const doubles = c ? await activeDoubles(c) : [];
    const why = doubles.length ? `${esc(t('dup.warning'))}</p>${similarList(doubles)}<p>` : esc(err.message);
    msg.innerHTML = (`<p class="warning">${esc(t('state.refused'))} ${why}</p>`
      + (action === 'restore' && !force ? `<button data-move="restore" data-force="true">${esc(t('state.force'))}</button>` : ''));
  }
  refresh();
});
function fileView(id) {
  const keys = FILE_TABS.map(x => x.key);
  let tab = location.hash.slice(1) || 'general';
  if (!keys.includes(tab)) tab = 'general';
  const root = $('#view');
  root.innerHTML = `<h1 id="name"></h1><div id="banner"></div><div id="state-actions"></div><div id="state-msg" role="status"></div>
    <div class="tabs" role="tablist">${keys.map(k => `<button role="tab" data-tab="${k}" aria-selected="${k === tab}">${esc(t('file.' + k))}</button>`).join('')}</div>
    ${keys.map(k => `<section data-panel="${k}" ${k === tab ? '' : 'hidden'}><div class="data"></div><div class="forms"></div></section>`).join('')}`;
  root.querySelectorAll('[data-tab]').forEach(b => b.onclick = () => {
    tab = b.dataset.tab; history.replaceState(null, '', location.search + '#' + tab);
    root.querySelectorAll('[data-tab]').forEach(x => x.setAttribute('aria-selected', x === b));
    root.querySelectorAll('[data-panel]').forEach(p => { p.hidden = p.dataset.panel !== tab; });
  });
  const forms = k => root.querySelector(`[data-panel="${k}"] .forms`);
  const data = k => root.querySelector(`[data-panel="${k}"] .data`);
  const enc = encodeURIComponent(id);
  const canWrite = () => me?.role !== 'viewer';
  let reg = null; // { kinds, sections, employees }
  let built = false;
  const refOptionsOf = c => async kind => {
    if (kind === 'employee') return reg.employees.map(e => [e.id, e.name || e.code]);
    if (kind === 'client') return [[c.id, c.name]];
    const level = reg.kinds.find(k => k.kind === kind)?.parent === 'company'
      ? `company=${encodeURIComponent(c.company)}` : `client=${enc}`;
    return (await api(`/api/records?kind=${kind}&${level}`).catch(() => []))
      .map(r => [r.id, r.title || r.fields?.name || r.name || r.id]);
  };
  const clientKinds = () => reg.kinds.filter(k => k.parent !== 'company' && !OWN_TAB_KINDS.includes(k.kind));
  const kindsOf = spec => spec.rest
    ? clientKinds().filter(k => !FILE_TABS.some(x => x.kinds?.includes(k.kind)))
    : (spec.kinds || []).map(n => reg.kinds.find(k => k.kind === n)).filter(Boolean);
  // The skeleton of every collection and kind tab: a table per block, and its add form.
  async function buildBlocks(c) {
    for (const spec of FILE_TABS.filter(x => x.sections || x.kinds || x.rest)) {
      const blocks = [];
      for (const name of spec.sections || []) {
        const sec = reg.sections.find(s => s.section === name);
        if (!sec) continue;
        const { head } = sectionBlock(sec, { [name]: [] }, enc, canWrite());
        blocks.push(`<h3>${esc(t('section.' + name))}</h3><table><thead><tr>${head}</tr></thead><tbody data-section-rows="${name}"></tbody></table>`);
      }
      const kinds = kindsOf(spec);
      if (spec.rest) {
        blocks.push(`<label class="inline">${esc(t('file.kind'))} <select data-more>${kinds.map(k => `<option value="${k.kind}">${esc(kindLabel(k))}</option>`).join('')}</select></label>`);
      }
      for (const k of kinds) {
        const { head } = kindRows(k, [], canWrite());
        blocks.push(`<div data-kind-block="${k.kind}" ${spec.rest && k !== kinds[0] ? 'hidden' : ''}><h3>${esc(kindLabel(k))}</h3>
          <table><thead><tr>${head}</tr></thead><tbody data-kind-rows="${k.kind}"></tbody></table></div>`);
      }
      if (spec.statement) blocks.push(`<h3>${esc(t('file.statement'))}</h3><div data-statement></div>`);
      data(spec.key).innerHTML = blocks.join('');
      const more = data(spec.key).querySelector('[data-more]');
      if (more) more.onchange = () => data(spec.key).querySelectorAll('[data-kind-block]').forEach(b => { b.hidden = b.dataset.kindBlock !== more.value; });
      if (!canWrite()) continue;
      const f = [];
      const refs = refOptionsOf(c);
      for (const name of spec.sections || []) {
        const sec = reg.sections.find(s => s.section === name);
        if (!sec || name === 'files') continue;
        f.push(`<details><summary>${esc(t('file.add'))}: ${esc(t('section.' + name))}</summary>${await addForm('item-' + name, sec.fields, refs)}</details>`);
      }
      if ((spec.sections || []).includes('files')) {
        f.push(`<form data-form="upload" class="grid"><div><label for="upload-file">${esc(t('file.upload'))}</label><input id="upload-file" name="file" type="file"><p class="error" data-for="_form"></p></div><div><button>${esc(t('file.upload'))}</button></div></form>`);
      }
      for (const k of kinds) {
        const fields = k.fields.filter(x => !x.system && x.name !== 'client');
        f.push(`<details data-kind-form="${k.kind}" ${spec.rest && k !== kinds[0] ? 'hidden' : ''}><summary>${esc(t('file.add'))}: ${esc(kindLabel(k))}</summary>${await addForm('record-' + k.kind, fields, refs)}</details>`);
      }
      forms(spec.key).innerHTML = f.join('');
      if (more) more.addEventListener('change', () => forms(spec.key).querySelectorAll('[data-kind-form]').forEach(b => { b.hidden = b.dataset.kindForm !== more.value; }));
      for (const name of spec.sections || []) {
        const sec = reg.sections.find(s => s.section === name);
        const el = forms(spec.key).querySelector(`form[data-form="item-${name}"]`);
        if (el) onSubmit(el, d => api(`/api/clients/${enc}/items/${name}`, { method: 'POST', body: givenAll(sec.fields, d) }));
      }
      const up = forms(spec.key).querySelector('form[data-form="upload"]');
      if (up) up.addEventListener('submit', async e => {
        e.preventDefault();
        const file = up.elements.file.files[0];
        if (!file) { fieldError(up, '_form', t('required')); return; }
        try {
          await api(`/api/clients/${enc}/files?name=${encodeURIComponent(file.name)}&mime=${encodeURIComponent(file.type)}`, { method: 'POST', body: await file.arrayBuffer() });
          up.reset(); fieldError(up, '_form', ''); refresh();
        } catch (err) { fieldError(up, '_form', err.message); }
      });
      for (const k of kinds) {
        const el = forms(spec.key).querySelector(`form[data-form="record-${k.kind}"]`);
        if (el) onSubmit(el, d => api('/api/records', { method: 'POST', body: { ...givenAll(k.fields, d), kind: k.kind, client: id } }));
      }
    }
  }
  async function buildForms(c) {
    const [kinds, sections, employees] = await Promise.all([api('/api/kinds'), api('/api/sections'), api('/api/employees').catch(() => [])]);
    reg = { kinds, sections, employees };
    await buildBlocks(c);
    if (!canWrite()) return;
    forms('notes').innerHTML = form('note', [input('text', t('note.text'), { type: 'textarea', required: true })], t('note.add'));
    onSubmit(forms('notes').firstElementChild, d => api(`/api/clients/${enc}/notes`, { method: 'POST', body: d }));
    forms('comments').innerHTML = form('comment', [input('text', t('comment.text'), { type: 'textarea', required: true }),
      input('priority', t('alert.priority'), { options: [['low', shown('low', 'enum')], ['normal', shown('normal', 'enum')], ['high', shown('high', 'enum')]] })], t('comment.add'));
    onSubmit(forms('comments').firstElementChild, d => api(`/api/clients/${enc}/comments`, { method: 'POST', body: d }));
    forms('alerts').innerHTML = form('alert', [input('type', t('alert.type'), { required: true, options: ['allergy', 'medical', 'payment', 'other'].map(v => [v, shown(v, 'enum')]) }),
      input('priority', t('alert.priority'), { required: true, options: ['low', 'normal', 'high', 'critical'].map(v => [v, shown(v, 'enum')]) }),
      input('description', t('alert.description'), { required: true })], t('alert.add'));
    onSubmit(forms('alerts').firstElementChild, d => api(`/api/clients/${enc}/alerts`, { method: 'POST', body: d }));
    // The add-case form comes from the registry's case kind: every field, required ones marked.
    const caseKind = kinds.find(k => k.kind === 'case');
    const refOptions = refOptionsOf(c);
    const caseFields = [];
    for (const f of caseKind.fields.filter(f => !f.system)) {
      let options = null;
      if (f.type === 'enum') options = f.values.map(v => [v, shown(v, 'enum')]);
      if (f.type === 'reference') options = await refOptions(f.references);
      // A text field with a per-company list (`case_category`) is offered as that list, and the
      // contact among this client's contacts, as the add-case document describes.
      if (f.name === 'category' && kinds.some(k => k.kind === 'case_category')) {
        options = (await refOptions('case_category')).map(([, name]) => [name, name]);
      }
      if (f.name === 'contact') options = (c.contacts || []).map(p => [p.name || p.id, p.name || p.email || p.id]);
      caseFields.push(input(f.name, fieldLabel(f.name), { required: f.required, options, type: f.type === 'long_text' ? 'textarea' : 'text', value: f.default || '' }));
    }
    forms('cases').innerHTML = form('case', caseFields, t('case.add'));
    onSubmit(forms('cases').firstElementChild, async d => {
      const r = await api('/api/cases', { method: 'POST', body: { ...d, client: id } });
      return t('case.created', { number: r.number });
    });
    forms('time').innerHTML = form('time', [input('text', t('time.text'), { type: 'textarea', required: true }),
      input('employee', t('time.employee'), { required: true, options: employees.map(e => [e.id, e.name || e.code]), value: me?.employee?.id || '' }),
      input('date', t('time.date'), { type: 'date', required: true, value: today() }),
      input('minutes', t('time.minutes'), { type: 'number' }), input('next_action', t('time.next'), { type: 'date' })], t('time.add'));
    onSubmit(forms('time').firstElementChild, async d => {
      if (d.minutes) d.minutes = Number(d.minutes);
      await api(`/api/clients/${enc}/time`, { method: 'POST', body: d });
      return t('time.done');
    });
    forms('wallet').innerHTML = form('wallet', [input('type', t('wallet.type'), { required: true, options: [['add_funds', t('wallet.add')], ['deduct', t('wallet.deduct')], ['reward', t('wallet.reward')]] }),
      input('amount', t('wallet.amount'), { required: true }), input('note', t('wallet.note'))], t('wallet.submit'));
    onSubmit(forms('wallet').firstElementChild, d => api(`/api/clients/${enc}/wallet`, { method: 'POST', body: d }));
    forms('messages').innerHTML = form('message', [input('to', t('msg.to'), { type: 'email', required: true, value: c.email || '' }),
      input('subject', t('msg.subject'), { required: true }), input('body', t('msg.body'), { type: 'textarea', required: true })], t('msg.send'));
    onSubmit(forms('messages').firstElementChild, d => api(`/api/clients/${enc}/messages`, { method: 'POST', body: d }));
  }
  const list = items => items.length ? items : [['empty', `<p>${esc(t('file.empty'))}</p>`]];
  const emptyRow = n => [['empty', `<tr><td colspan="${n}">${esc(t('file.empty'))}</td></tr>`]];
  let current = null;
  async function load() {
    let c;
    try { c = await api(`/api/clients/${enc}`); } catch (e) { if (e instanceof Offline) return; setText($('#name'), t('file.not_found')); return; }
    current = c;
    if (!built) { built = true; await buildForms(c); }
    setText($('#name'), c.name);
    document.title = c.name + ' · Ficha';
    const moves = !canWrite() ? [] : c.state === 'active' ? ['archive', 'trash'] : ['archived', 'trashed'].includes(c.state) ? ['restore'] : [];
    setHtml($('#state-actions'), moves.map(a => `<button data-move="${a}">${esc(t('action.' + a))}</button>`).join(' '));
    const critical = [...c.alerts.filter(a => a.active && a.priority === 'critical'), ...(c.allergies || []).filter(a => a.active !== false)];
    const overdraft = c.wallet?.overdraft;
    setHtml($('#banner'), (critical.length ? `<p class="banner" role="alert">${esc(t('file.critical'))}: ${critical.map(a => esc(a.description || a.type || a.name)).join(' · ')}</p>` : '')
      + (overdraft ? `<p class="banner" id="overdraft" role="alert">${esc(t('wallet.overdraft'))}</p>` : ''));
    const general = [['name', c.name], ['email', c.email], ['phone', c.phone], ['company', c.company, 'fixed'], ['state', t('state.' + c.state), 'fixed'],
      ['additional_info', c.additional_info], ...Object.entries(c.profile || {}).map(([k, v]) => k === 'assigned_employee'
        // An employee is shown by name; the id is no word for a person.
        ? [k, reg.employees.find(e => e.id === v)?.name ?? v, 'fixed'] : [k, v])];
    const conflicts = c.conflicts || {};
    patch(data('general'), general.map(([k, v, fixed]) => [k, `<p><b>${esc(fieldLabel(k))}</b>: <span class="value">${fixed || !canWrite() ? esc(shown(v, k === 'gender' ? 'enum' : undefined)) : editable(v, k === 'gender' ? 'enum' : 'text', { 'edit-field': k })}</span>
      ${conflicts[k] ? `<span class="conflict">${esc(t('file.conflict'))}: ${conflicts[k].map(o => `<button data-pick-field="${esc(k)}" data-value="${esc(o)}">${esc(o)}</button>`).join(' ')}</span>` : ''}</p>`]));
    patch(data('notes'), list(c.notes.filter(n => n.active).map(n => [n.id, `<article><p>${esc(n.text)}</p><small>${esc(fmtDate(n.created_at))}</small></article>`])));
    patch(data('comments'), list(c.comments.filter(n => n.active !== false).map(n => [n.id, `<article><p>${esc(n.text)}</p><small>${esc(shown(n.priority, 'enum'))} · ${esc(fmtDate(n.created_at))}</small></article>`])));
    patch(data('alerts'), list(c.alerts.filter(a => a.active).map(a => [a.id, `<article><p><b>${esc(shown(a.type, 'enum'))}</b> (${esc(shown(a.priority, 'enum'))}): ${esc(a.description)}</p></article>`])));
    patch(data('activity'), list([...c.log].reverse().map(l => [l.id, `<li>${esc(fmtDate(l.at))} · ${esc(l.who)} · ${esc(l.kind)} ${esc(l.text)}</li>`])));
    for (const sec of reg.sections) {
      const body = root.querySelector(`[data-section-rows="${sec.section}"]`);
      if (!body) continue;
      const { rows } = sectionBlock(sec, c, enc, canWrite());
      patch(body, rows.length ? rows : emptyRow(sec.fields.length + 1));
    }
    const [records, cases, w, rel, msgs] = await Promise.all([
      api(`/api/clients/${enc}/records`).catch(() => []), api(`/api/cases?client=${enc}`).catch(() => []),
      api(`/api/clients/${enc}/wallet`).catch(() => null), api(`/api/clients/${enc}/relations`).catch(() => null),
      api(`/api/clients/${enc}/messages`).catch(() => [])]);
    for (const k of reg.kinds) {
      const body = root.querySelector(`[data-kind-rows="${k.kind}"]`);
      if (!body) continue;
      const mine = records.filter(r => r.kind === k.kind)
        .sort((a, b) => String(b.date || b.created_at).localeCompare(String(a.date || a.created_at)));
      const { rows } = kindRows(k, mine, canWrite());
      patch(body, rows.length ? rows : emptyRow(8));
    }
    const st = root.querySelector('[data-statement]');
    if (st) {
      const s = await api(`/api/clients/${enc}/statement`).catch(() => null);
      setHtml(st, s ? `<p>${esc(t('file.balance'))}: <b>${esc(fmtMoney(s.pending_total) || '0')}</b> · ${esc(t('list.sales'))}: <b>${esc(fmtMoney(s.sales_total) || '0')}</b></p>` : '');
    }
    patch(data('cases'), list(cases.map(k => [k.id, `<p><b>${esc(k.number)}</b> ${esc(k.title)} · ${esc(shown(k.status, 'enum'))} · ${esc(shown(k.priority, 'enum'))} · SLA ${esc(k.sla?.state || '')}</p>`])));
    if (w) setHtml(data('wallet'), `<p>${esc(t('wallet.balance'))}: <b id="balance">${esc(fmtMoney({ [w.currency || 'EUR']: w.balance }))}</b></p>`);
    if (rel) {
      const link = cid => `<a href="/clients/${esc(cid)}" data-nav>${esc(cid.slice(0, 8))}</a>`;
      setHtml(data('relations'), `<p>${esc(t('rel.ancestors'))}: ${(rel.ancestors || []).map(link).join(' › ') || '—'}</p>
        <p>${esc(t('rel.children'))}: ${(rel.children || []).map(link).join(', ') || '—'}</p>
        <p>${esc(t('rel.other'))}: ${(rel.other_relations || []).map(e => `${esc(e.kind)} ${link(e.parent === id ? e.child : e.parent)}`).join(', ') || '—'}</p>`);
    }
    patch(data('messages'), list((Array.isArray(msgs) ? msgs : []).map(m => [m.id, `<p><b>${esc(m.fields?.subject || m.title || '')}</b> · ${esc(m.fields?.to || '')} · ${esc(shown(m.status, 'enum'))} · ${esc(fmtDate(m.date || m.created_at))}</p>`])));
  }
  root.addEventListener('click', async e => {
    const pick = e.target.closest('[data-pick-field]');
    if (pick) {
      await api(`/api/clients/${enc}/fields`, { method: 'POST', body: { field: pick.dataset.pickField, value: pick.dataset.value } });
      return load();
    }
    const cell = e.target.closest('button.cell');
    if (cell) {
      const d = cell.dataset;
      if (d.editField) {
        const v = d.editField === 'additional_info' ? current.additional_info : (current[d.editField] ?? current.profile?.[d.editField]);
        startEdit(cell, { name: d.editField, type: d.editField === 'additional_info' ? 'long_text' : 'text' }, v,
          value => api(`/api/clients/${enc}/fields`, { method: 'POST', body: { field: d.editField, value } }));
      } else if (d.editItem) {
        const sec = reg.sections.find(s => s.section === d.section);
        const f = sec.fields.find(x => x.name === d.field);
        const it = (current[d.section] || []).find(x => x.id === d.editItem) || {};
        startEdit(cell, f, it[d.field], value => api(`/api/clients/${enc}/items/${d.section}/${encodeURIComponent(d.editItem)}`, { method: 'POST', body: { [d.field]: value } }));
      } else if (d.editRecord) {
        const k = reg.kinds.find(x => x.kind === d.kind);
        const f = k.fields.find(x => x.name === d.field);
        const r = await api(`/api/records/${encodeURIComponent(d.editRecord)}`).catch(() => ({}));
        const raw = r.fields?.[d.field] ?? r[d.field];
        startEdit(cell, f, typeof raw === 'object' && raw !== null ? '' : raw,
          value => api(`/api/records/${encodeURIComponent(d.editRecord)}`, { method: 'POST', body: { [d.field]: value } }));
      }
      return;
    }
    const rm = e.target.closest('[data-remove]');
    if (rm && confirm(t('file.confirm_remove'))) {
      await api(`/api/clients/${enc}/items/${rm.dataset.section}/${encodeURIComponent(rm.dataset.remove)}`, { method: 'DELETE' });
      return load();
    }
    const off = e.target.closest('[data-deactivate]');
    if (off) {
      await api(`/api/clients/${enc}/items/${off.dataset.section}/${encodeURIComponent(off.dataset.deactivate)}`, { method: 'POST', body: { active: 'false' } });
      return load();
    }
  });
  return load;
}
