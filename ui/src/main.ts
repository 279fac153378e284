// The console's shell: who is logged in, the navigation and a hash router (#/pods,
// #/pods/ID, #/board, #/board/KEY, #/topology, #/runners, #/models, #/activity, #/audit, #/teams, #/users, #/orgs, #/account, #/login).
// Also here, for every page: the theme (the system's, or the toggle's choice saved in
// localStorage), the menu button of narrow screens, keyboard shortcuts (/ search, g p pods, …,
// ? help) and the column labels stacked tables show on phones (data-label on each cell).
// What the navigation and the pages offer follows the caller's role (GET /api/v1/whoami). Each page renders into the main area and returns
// a cleanup function (timers, sockets) that runs when the user navigates away.
import { api, errorText, ROLE_NAMES, setUnauthenticatedHandler, Who } from './api';
import { install as installCspStyles } from './csp-styles';
import { notifyButton, watchAgentStates } from './agentstate';
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
import { modelsPage } from './pages/models';
import { boardPage, ticketPage } from './pages/board';
import { channelsPage } from './pages/channels';
import { reviewPage } from './pages/review';
import { topologyPage } from './pages/topology';

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
  { hash: '#/board', label: 'Board' },
  { hash: '#/runners', label: 'Runners' },
  { hash: '#/models', label: 'Models' },
  { hash: '#/channels', label: 'Channels' },
  { hash: '#/topology', label: 'Topology' },
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
let unwatch: (() => void) | null = null; // the agent-state watcher (agentstate.ts) while logged in

setUnauthenticatedHandler(() => {
  who = null;
  unwatch?.(); unwatch = null;
  if (!location.hash.startsWith('#/login')) {
    const back = location.hash && location.hash !== '#/login' ? location.hash : '';
    location.hash = '#/login' + (back ? '?next=' + encodeURIComponent(back) : '');
  }
});

function route(hash: string): [Page, string] {
  const path = hash.replace(/^#/, '').split('?')[0] || '/pods';
  const rv = path.match(/^\/pods\/([A-Za-z0-9_-]+)\/review$/);
  if (rv) return [reviewPage, rv[1]];
  const m = path.match(/^\/pods\/([A-Za-z0-9_-]+)$/);
  if (m) return [terminalPage, m[1]];
  const tk = path.match(/^\/board\/([A-Za-z0-9_.-]+)$/);
  if (tk) return [ticketPage, tk[1]];
  const cm = path.match(/^\/channels(?:\/([a-z0-9_-]+))?$/);
  if (cm) return [channelsPage, cm[1] || ''];
  switch (path) {
    case '/runners':
      return [runnersPage, ''];
    case '/models':
      return [modelsPage, ''];
    case '/board':
      return [boardPage, ''];
    case '/topology':
      return [topologyPage, ''];
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
  if (!unwatch) unwatch = watchAgentStates();
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
    unwatch?.(); unwatch = null;
    location.hash = '#/login';
  };
  const menu = h('button', { type: 'button', class: 'nav-toggle', id: 'nav-toggle', 'aria-expanded': 'false', 'aria-controls': 'nav-links' }, 'Menu');
  const nav = h('nav', { class: 'sidebar', 'aria-label': 'Main' },
    h('a', { class: 'skip', href: '#main', onclick: (e: Event) => { e.preventDefault(); document.getElementById('main')?.focus(); } }, 'Skip to content'),
    h('div', { class: 'brand-row' }, h('div', { class: 'brand' }, h('span', { class: 'brand-mark', 'aria-hidden': 'true' }), 'airmesh'), menu),
    h('div', { class: 'nav-links', id: 'nav-links' }, links),
    h('div', { class: 'nav-user' },
      h('div', { class: 'nav-user-name' }, w.user),
      h('div', { class: 'nav-user-meta', id: 'nav-role' }, `${ROLE_NAMES[w.role] || 'role ' + w.role} · ${w.org}`),
      h('div', { class: 'nav-user-actions' },
        h('a', { href: '#/account', id: 'nav-account', class: 'btn btn-small' + (current === '#/account' ? ' active' : ''), 'aria-current': current === '#/account' ? 'page' : null }, 'My account'),
        h('button', { type: 'button', class: 'btn btn-small', onclick: logout }, 'Log out'),
        themeButton(),
        notifyButton())));
  menu.addEventListener('click', () => {
    const open = !nav.classList.contains('open');
    nav.classList.toggle('open', open);
    menu.setAttribute('aria-expanded', String(open));
    menu.textContent = open ? 'Close' : 'Menu';
  });
  return nav;
}

// --- theme --------------------------------------------------------------------------------
type Theme = 'system' | 'light' | 'dark';
const THEME_KEY = 'airmesh.theme';
const THEME_LABEL: Record<Theme, string> = { system: 'Theme: system', light: 'Theme: light', dark: 'Theme: dark' };

function savedTheme(): Theme {
  try {
    const t = localStorage.getItem(THEME_KEY);
    return t === 'light' || t === 'dark' ? t : 'system';
  } catch {
    return 'system';
  }
}

/** data-theme on <html> when the user chose one; none follows prefers-color-scheme (CSS). */
function applyTheme(): void {
  const t = savedTheme();
  if (t === 'system') document.documentElement.removeAttribute('data-theme');
  else document.documentElement.setAttribute('data-theme', t);
}

function themeButton(): HTMLElement {
  const b = h('button', { type: 'button', class: 'btn btn-small theme-toggle', id: 'theme-toggle', title: 'System, light or dark' }, THEME_LABEL[savedTheme()]);
  b.addEventListener('click', () => {
    const order: Theme[] = ['system', 'light', 'dark'];
    const next = order[(order.indexOf(savedTheme()) + 1) % order.length];
    try {
      if (next === 'system') localStorage.removeItem(THEME_KEY);
      else localStorage.setItem(THEME_KEY, next);
    } catch { /* private mode: this page only */ }
    if (next === 'system') document.documentElement.removeAttribute('data-theme');
    else document.documentElement.setAttribute('data-theme', next);
    b.textContent = THEME_LABEL[next];
  });
  return b;
}
window.addEventListener('storage', (e) => { if (e.key === THEME_KEY) applyTheme(); });

// --- stacked tables and truncated text --------------------------------------------------------
/** Every table cell gets its column's name as data-label (phones show it beside the value), and
 * every .trunc/.ellipsis element without a title gets its full text as title (hover). */
function labelTables(): void {
  const fix = (el: ParentNode) => {
    for (const t of el.querySelectorAll<HTMLTableElement>('table.table')) {
      const heads = Array.from(t.querySelectorAll('thead th')).map((th) => th.textContent || '');
      for (const tr of t.querySelectorAll('tbody tr')) {
        Array.from((tr as HTMLTableRowElement).cells).forEach((td, i) => { if (!td.hasAttribute('data-label')) td.setAttribute('data-label', heads[i] || ''); });
      }
    }
    for (const e of el.querySelectorAll<HTMLElement>('.trunc, .ellipsis, .detail')) if (!e.title) e.title = e.textContent || '';
  };
  new MutationObserver((recs) => {
    for (const r of recs) for (const n of r.addedNodes) if (n instanceof HTMLElement) fix(n.parentElement || n);
  }).observe(document.body || document.documentElement, { childList: true, subtree: true });
}

// --- keyboard shortcuts -----------------------------------------------------------------------
const GO: Record<string, string> = { p: '#/pods', r: '#/runners', a: '#/activity', l: '#/audit', t: '#/teams', u: '#/users', m: '#/account' };

function installShortcuts(): void {
  let gAt = 0;
  document.addEventListener('keydown', (e) => {
    if (e.ctrlKey || e.metaKey || e.altKey || !who) return;
    const t = e.target as HTMLElement | null;
    if (t && (t.closest('input, textarea, select, [contenteditable], .xterm, dialog') )) return;
    if (e.key === '/') {
      const search = document.querySelector<HTMLInputElement>('#main input[type="search"]');
      e.preventDefault();
      if (search) search.focus();
      else location.hash = '#/pods?focus=search';
      return;
    }
    if (e.key === '?') {
      e.preventDefault();
      showHelp();
      return;
    }
    if (e.key === 'g') {
      gAt = Date.now();
      return;
    }
    if (gAt && Date.now() - gAt < 1500 && GO[e.key]) {
      e.preventDefault();
      location.hash = GO[e.key];
    }
    gAt = 0;
  });
}

function showHelp(): void {
  if (document.querySelector('dialog.help')) return;
  const rows: [string[], string][] = [
    [['/'], 'Search or filter this page'], [['g', 'p'], 'Pods (overview)'], [['g', 'r'], 'Runners'], [['g', 'a'], 'Activity'],
    [['g', 'l'], 'Audit log'], [['g', 't'], 'Teams'], [['g', 'u'], 'Users'], [['g', 'm'], 'My account'], [['?'], 'This help'],
  ];
  const dialog = h('dialog', { class: 'confirm help', id: 'shortcuts-help', 'aria-labelledby': 'help-title' });
  const close = () => { dialog.close(); dialog.remove(); };
  append(dialog, [
    h('h2', { id: 'help-title' }, 'Keyboard shortcuts'),
    h('table', null, h('tbody', null, rows.map(([keys, what]) => h('tr', null,
      h('td', { class: 'nowrap' }, keys.flatMap((k, i) => [i ? ' then ' : '', h('kbd', null, k)])), h('td', null, what))))),
    h('p', { class: 'small' }, 'Shortcuts do nothing while you type in a field or the terminal.'),
    h('div', { class: 'actions' }, h('button', { type: 'button', class: 'btn btn-primary', onclick: close }, 'Close')),
  ]);
  dialog.addEventListener('cancel', close);
  document.body.appendChild(dialog);
  dialog.showModal();
}

applyTheme();
labelTables();
installShortcuts();
window.addEventListener('hashchange', () => void render());
if (!location.hash) history.replaceState(null, '', '#/pods');
void render();
