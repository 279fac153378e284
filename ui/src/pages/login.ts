// Login: user, password and (optionally) organization; POST /api/v1/login sets the session
// cookie. A refused login says so in words and keeps what was typed except the password.
import { api, errorText, Who } from '../api';
import { append, h, notice } from '../dom';

const NOTICE_KEY = 'airmesh-login-notice';

/** A message for the next login page (e.g. after a password change ended the session). */
export function setLoginNotice(text: string, user = '', org = ''): void {
  try {
    sessionStorage.setItem(NOTICE_KEY, JSON.stringify({ text, user, org }));
  } catch {
    /* storage off: the login page just has no message */
  }
}

function takeLoginNotice(): { text: string; user: string; org: string } | null {
  try {
    const v = sessionStorage.getItem(NOTICE_KEY);
    sessionStorage.removeItem(NOTICE_KEY);
    return v ? JSON.parse(v) : null;
  } catch {
    return null;
  }
}

export function loginPage(root: HTMLElement, done: (w: Who) => void): void {
  document.title = 'Log in · airmesh';
  const user = h('input', { id: 'login-user', name: 'user', autocomplete: 'username', required: true, autofocus: true });
  const password = h('input', { id: 'login-password', name: 'password', type: 'password', autocomplete: 'current-password', required: true });
  const org = h('input', { id: 'login-org', name: 'org', placeholder: 'default', autocomplete: 'organization' });
  const error = h('div', { class: 'form-error', role: 'alert' });
  const submit = h('button', { type: 'submit', class: 'btn btn-primary btn-block' }, 'Log in');
  const said = takeLoginNotice();
  if (said) {
    user.value = said.user || '';
    if (said.org && said.org !== 'default') org.value = said.org;
  }
  const form = h('form', { class: 'login-card', novalidate: true },
    h('div', { class: 'brand brand-large' }, h('span', { class: 'brand-mark', 'aria-hidden': 'true' }), 'airmesh'),
    said ? notice('ok', said.text) : null,
    h('p', { class: 'muted' }, 'Log in to the appliance console.'),
    field('User', user),
    field('Password', password),
    field('Organization', org, 'Leave empty for the default organization.'),
    error,
    submit);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    error.textContent = '';
    if (!user.value.trim() || !password.value) {
      error.textContent = 'Enter your user name and password.';
      return;
    }
    submit.disabled = true;
    submit.textContent = 'Logging in…';
    try {
      const body: Record<string, string> = { user: user.value.trim(), password: password.value };
      if (org.value.trim()) body.org = org.value.trim();
      const r = await api<Who & { token: string }>('POST', '/login', body);
      done({ user: r.user, org: r.org, role: r.role, role_name: r.role_name, superuser: r.superuser });
    } catch (err) {
      error.textContent = errorText(err);
      password.value = '';
      password.focus();
    } finally {
      submit.disabled = false;
      submit.textContent = 'Log in';
    }
  });
  append(root, [h('main', { class: 'login-wrap' }, form)]);
  (said && user.value ? password : user).focus();
}

export function field(label: string, input: HTMLElement, hint?: string): HTMLElement {
  const id = input.id || 'f-' + Math.random().toString(36).slice(2);
  input.id = id;
  return h('div', { class: 'field' },
    h('label', { for: id }, label),
    input,
    hint ? h('div', { class: 'hint' }, hint) : null);
}
