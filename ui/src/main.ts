// The console's shell: who is logged in, the navigation and a hash router (#/pods,
// #/pods/ID, #/runners, #/activity, #/audit, #/teams, #/users, #/orgs, #/account, #/login).
// What the navigation and the pages offer follows the caller's role (GET /api/v1/whoami). Each page renders into the main area and returns
// a cleanup function (timers, sockets) that runs when the user navigates away.
import { api, errorText, ROLE_NAMES, setUnauthenticatedHandler, Who } from './api';
import { install as installCspStyles } from './csp-styles';
import { append, clear, h } from './dom';
import { loginPage } from './pages/login';
import { runnersPage } from './pages/runners';
import { podsPage } from './pages/pods';
import { terminalPage } from './pages/terminal';
import { activityPage } from './pages/activity';
import { auditPage } from './pages/audit';
import { usersPage } from './pages/users';
import { accountPage } from './pages/account';
import { teamsPage } from './pages/teams';
import { orgsPage } from './pages/orgs';

installCspStyles();

export interface Ctx {
  who: Who;
  main: HTMLElement;
  /** Update the page title (document title and header). */
  title(text: string): void;
}
export type Cleanup = () => void;
type Page = (ctx: Ctx, param: string) => Cleanup | void;

// The navigation: a page is one entry here and one in `route`. `show` hides an entry from
// callers who could not use the page (the page itself still says so if opened by URL).
const NAV: { hash: string; label: string; show?: (w: Who) => boolean }[] = [
  { hash: '#/pods', label: 'Pods' },
  { hash: '#/runners', label: 'Runners' },
  { hash: '#/activity', label: 'Activity' },
  { hash: '#/audit', label: 'Audit log' },
  { hash: '#/teams', label: 'Teams' },
  { hash: '#/users', label: 'Users' },
  { hash: '#/orgs', label: 'Organizations', show: (w) => !!w.superuser },
];

const root = document.getElementById('app') as HTMLElement;
let who: Who | null = null;
let cleanup: Cleanup | void;
let renderSeq = 0;

setUnauthenticatedHandler(() => {
  who = null;
  if (!location.hash.startsWith('#/login')) {
    const back = location.hash && location.hash !== '#/login' ? location.hash : '';
    location.hash = '#/login' + (back ? '?next=' + encodeURIComponent(back) : '');
  }
});

function route(hash: string): [Page, string] {
  const path = hash.replace(/^#/, '').split('?')[0] || '/pods';
  const m = path.match(/^\/pods\/([A-Za-z0-9_-]+)$/);
  if (m) return [terminalPage, m[1]];
  switch (path) {
    case '/runners':
      return [runnersPage, ''];
    case '/activity':
      return [activityPage, ''];
    case '/audit':
      return [auditPage, ''];
    case '/users':
      return [usersPage, ''];
    case '/teams':
      return [teamsPage, ''];
    case '/orgs':
      return [orgsPage, ''];
    case '/account':
      return [accountPage, ''];
    case '/pods':
    case '/':
      return [podsPage, ''];
    default:
      return [notFound, path];
  }
}

function notFound(ctx: Ctx, path: string): void {
  ctx.title('Page not found');
  append(ctx.main, [
    h('div', { class: 'empty' },
      h('p', null, `There is no page at ${path}.`),
      h('a', { href: '#/pods', class: 'btn btn-primary' }, 'Go to pods')),
  ]);
}

async function render(): Promise<void> {
  const seq = ++renderSeq;
  if (cleanup) {
    try { cleanup(); } catch { /* a page's cleanup must not break navigation */ }
    cleanup = undefined;
  }
  if (location.hash.startsWith('#/login')) {
    clear(root);
    root.className = 'login-root';
    const next = new URLSearchParams(location.hash.split('?')[1] || '').get('next') || '#/pods';
    cleanup = loginPage(root, () => {
      who = null; // the shell asks /whoami (role name, superuser) on the way in
      location.hash = next.startsWith('#/') && !next.startsWith('#/login') ? next : '#/pods';
    });
    return;
  }
  if (!who) {
    try {
      who = await api<Who>('GET', '/whoami');
    } catch (e) {
      if (seq !== renderSeq) return;
      if (!location.hash.startsWith('#/login')) {
        clear(root);
        root.className = 'login-root';
        root.appendChild(h('div', { class: 'notice notice-error' }, errorText(e)));
      }
      return;
    }
    if (seq !== renderSeq) return;
  }
  const [page, param] = route(location.hash);
  const main = h('main', { id: 'main', class: 'main', tabindex: '-1' });
  const heading = h('h1', { class: 'page-title' });
  clear(root);
  root.className = 'shell';
  append(root, [shellNav(who), h('div', { class: 'content' }, h('header', { class: 'page-header' }, heading), main)]);
  const ctx: Ctx = {
    who,
    main,
    title(text) {
      heading.textContent = text;
      document.title = text + ' · airmesh';
    },
  };
  cleanup = page(ctx, param);
}

function shellNav(w: Who): HTMLElement {
  const current = '#/' + (location.hash.replace(/^#\//, '').split(/[/?]/)[0] || 'pods');
  const links = NAV.filter((n) => !n.show || n.show(w)).map((n) =>
    h('a', { href: n.hash, class: 'nav-link' + (n.hash === current ? ' active' : ''), 'aria-current': n.hash === current ? 'page' : null }, n.label));
  const logout = async () => {
    try {
      await api('POST', '/logout');
    } catch {
      /* the session may already be gone */
    }
    who = null;
    location.hash = '#/login';
  };
  return h('nav', { class: 'sidebar', 'aria-label': 'Main' },
    h('a', { class: 'skip', href: '#main', onclick: (e: Event) => { e.preventDefault(); document.getElementById('main')?.focus(); } }, 'Skip to content'),
    h('div', { class: 'brand' }, h('span', { class: 'brand-mark', 'aria-hidden': 'true' }), 'airmesh'),
    h('div', { class: 'nav-links' }, links),
    h('div', { class: 'nav-user' },
      h('div', { class: 'nav-user-name' }, w.user),
      h('div', { class: 'nav-user-meta', id: 'nav-role' }, `${ROLE_NAMES[w.role] || 'role ' + w.role} · ${w.org}`),
      h('div', { class: 'nav-user-actions' },
        h('a', { href: '#/account', id: 'nav-account', class: 'btn btn-small' + (current === '#/account' ? ' active' : ''), 'aria-current': current === '#/account' ? 'page' : null }, 'My account'),
        h('button', { type: 'button', class: 'btn btn-small', onclick: logout }, 'Log out'))));
}

window.addEventListener('hashchange', () => void render());
if (!location.hash) history.replaceState(null, '', '#/pods');
void render();
