// My account, for everyone: who you are, changing your own password (current + new; the
// appliance then ends your sessions, so the page sends you to log in again), and your own API
// tokens: create (the token is shown once), list, revoke.
import { api, ApiToken, errorText, ROLE_NAMES } from '../api';
import { ago, append, clear, confirmDialog, dateTime, h, notice, secretBox, until } from '../dom';
import type { Ctx } from '../main';
import { field, setLoginNotice } from './login';

export function accountPage(ctx: Ctx): () => void {
  ctx.title('My account');
  const me = ctx.who;
  const messages = h('div', { class: 'messages' });
  const tokenPanel = h('section', { class: 'panel', 'aria-label': 'API tokens' });
  let stopped = false;
  const say = (kind: 'error' | 'ok', text: string) => {
    clear(messages);
    messages.appendChild(notice(kind, text, () => {}));
  };

  // --- who -----------------------------------------------------------------------------------
  const profile = h('section', { class: 'panel', 'aria-label': 'Profile' },
    h('h2', null, 'You'),
    h('dl', { class: 'facts' },
      h('dt', null, 'User'), h('dd', { id: 'account-user' }, me.user),
      h('dt', null, 'Organization'), h('dd', null, me.org),
      h('dt', null, 'Role'), h('dd', null, ROLE_NAMES[me.role] || String(me.role),
        me.superuser ? h('span', { class: 'muted' }, ' · appliance administrator') : null)));

  // --- password ------------------------------------------------------------------------------
  const current = h('input', { id: 'current-password', type: 'password', autocomplete: 'current-password' });
  const next = h('input', { id: 'new-password', type: 'password', autocomplete: 'new-password' });
  const again = h('input', { id: 'new-password-again', type: 'password', autocomplete: 'new-password' });
  const pwErr = h('div', { class: 'form-error', role: 'alert' });
  const pwSubmit = h('button', { type: 'submit', class: 'btn btn-primary' }, 'Change password');
  const pwForm = h('form', { class: 'panel form-grid', id: 'password-form', novalidate: true, 'aria-label': 'Change password' },
    h('h2', null, 'Change your password'),
    h('p', { class: 'muted' }, 'At least 12 characters. Every session of yours ends, this one too: you log in again with the new password.'),
    field('Current password', current),
    h('div', null),
    field('New password', next),
    field('New password again', again),
    pwErr,
    h('div', { class: 'actions span-all' }, pwSubmit));
  pwForm.addEventListener('input', () => { pwErr.textContent = ''; });
  pwForm.addEventListener('submit', async (e) => {
    e.preventDefault();
    pwErr.textContent = '';
    const fail = (m: string, el: HTMLInputElement) => { pwErr.textContent = m; el.focus(); };
    if (!current.value) return fail('Enter your current password.', current);
    if (next.value.length < 12) return fail('The new password needs at least 12 characters.', next);
    if (next.value !== again.value) return fail('The two new passwords differ.', again);
    if (next.value === current.value) return fail('The new password is the same as the current one.', next);
    pwSubmit.disabled = true;
    try {
      await api('POST', `/users/${encodeURIComponent(me.user)}/password`, { password: next.value, current_password: current.value });
      setLoginNotice('Your password is changed. Log in with the new one.', me.user, me.org);
      location.hash = '#/login?next=' + encodeURIComponent('#/account');
    } catch (e2) {
      const msg = errorText(e2);
      const wrongCurrent = /current_password/i.test(msg);
      fail(wrongCurrent ? 'The current password is wrong.' : msg, wrongCurrent ? current : next);
      if (wrongCurrent) current.value = '';
    } finally {
      pwSubmit.disabled = false;
    }
  });

  // --- API tokens ----------------------------------------------------------------------------
  const tokenList = h('div', null, h('div', { class: 'loading' }, 'Loading tokens…'));
  const created = h('div', { class: 'created', hidden: true });
  const tName = h('input', { id: 'token-name', placeholder: 'ci, laptop…', autocomplete: 'off' });
  const tRole = h('select', { id: 'token-role' });
  for (let r = 1; r <= me.role; r++) tRole.appendChild(h('option', { value: ROLE_NAMES[r], selected: r === me.role }, ROLE_NAMES[r]));
  const tTtl = h('select', { id: 'token-ttl' },
    h('option', { value: '1d' }, '1 day'),
    h('option', { value: '7d' }, '7 days'),
    h('option', { value: '30d', selected: true }, '30 days'),
    h('option', { value: '90d' }, '90 days'),
    h('option', { value: '366d' }, '1 year'));
  const tErr = h('div', { class: 'form-error', role: 'alert' });
  const tSubmit = h('button', { type: 'submit', class: 'btn btn-primary', id: 'create-token' }, 'Create token');
  const tForm = h('form', { class: 'inline-form', id: 'token-form', novalidate: true },
    field('Name', tName), field('Role', tRole), field('Expires after', tTtl), h('div', { class: 'field field-button' }, tSubmit));
  tForm.addEventListener('submit', async (e) => {
    e.preventDefault();
    tErr.textContent = '';
    tSubmit.disabled = true;
    try {
      const t = await api<{ token: string; id: string; role: string; expires_ms: number }>('POST', '/api-tokens',
        { name: tName.value.trim(), role: tRole.value, ttl: tTtl.value });
      clear(created);
      created.dataset.token = t.id;
      const { box, copy } = secretBox(t.token, 'new-api-token',
        h('button', { type: 'button', class: 'btn btn-primary', onclick: () => { created.hidden = true; } }, 'Done'));
      append(created, [
        h('p', { class: 'strong' }, `Token ${tName.value.trim() || t.id} (${t.role}, expires ${dateTime(t.expires_ms)}). It is shown only now:`),
        h('p', { class: 'muted small' }, 'Use it as ', h('code', null, 'AIRMESH_TOKEN'), ' for airmeshctl, or as ', h('code', null, 'Authorization: Bearer …'), ' for the REST API.'),
        box,
      ]);
      created.hidden = false;
      copy.focus();
      tName.value = '';
      void refreshTokens();
    } catch (e2) {
      tErr.textContent = errorText(e2);
    } finally {
      tSubmit.disabled = false;
    }
  });
  append(tokenPanel, [
    h('h2', null, 'Your API tokens'),
    h('p', { class: 'muted' }, 'For automation and airmeshctl. A token acts with the role you give it, never above yours.'),
    tForm, tErr, created, tokenList,
  ]);

  async function revoke(t: ApiToken): Promise<void> {
    if (!(await confirmDialog(`Revoke API token ${t.name || t.id}?`, 'Anything using it is refused from now on.', 'Revoke token'))) return;
    try {
      await api('DELETE', `/api-tokens/${encodeURIComponent(t.id)}`);
      say('ok', `The API token ${t.name || t.id} is revoked.`);
      if (created.dataset.token === t.id) created.hidden = true;
    } catch (e) {
      say('error', errorText(e));
    }
    void refreshTokens();
  }

  async function refreshTokens(): Promise<void> {
    try {
      const r = await api<{ api_tokens: ApiToken[] }>('GET', '/api-tokens');
      if (stopped) return;
      const mine = r.api_tokens.filter((t) => t.user === me.user).sort((a, b) => b.created_ms - a.created_ms);
      clear(tokenList);
      if (mine.length === 0) {
        tokenList.appendChild(h('p', { class: 'muted', id: 'no-tokens' }, 'You have no API tokens.'));
        return;
      }
      tokenList.appendChild(h('table', { class: 'table', id: 'tokens-table' },
        h('thead', null, h('tr', null, ['Name', 'Role', 'Created', 'Expires', ''].map((x) => h('th', { scope: 'col' }, x)))),
        h('tbody', null, mine.map((t) => h('tr', { 'data-token': t.id },
          h('td', null, t.name || h('span', { class: 'muted' }, '(no name)'), h('div', { class: 'muted small mono' }, t.id)),
          h('td', null, t.role),
          h('td', { class: 'small', title: dateTime(t.created_ms) }, ago(t.created_ms)),
          h('td', { class: 'small', title: dateTime(t.expires_ms) }, until(t.expires_ms)),
          h('td', { class: 'row-actions' }, h('button', { type: 'button', class: 'btn btn-small btn-danger-outline', onclick: () => void revoke(t) }, 'Revoke')))))));
    } catch (e) {
      if (!stopped) say('error', errorText(e));
    }
  }

  append(ctx.main, [messages, profile, pwForm, tokenPanel]);
  void refreshTokens();
  return () => {
    stopped = true;
  };
}
