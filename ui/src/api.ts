// REST client for /api/v1: JSON in and out, the session cookie (same origin) and the CSRF
// header every state-changing request needs. Errors become ApiError with the server's message
// in words; a 401 sends the user to the login page.

export class ApiError extends Error {
  constructor(public status: number, public code: string, message: string) {
    super(message);
  }
}

let onUnauthenticated: () => void = () => {};
export function setUnauthenticatedHandler(fn: () => void): void {
  onUnauthenticated = fn;
}

export async function api<T = any>(method: string, path: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = { Accept: 'application/json' };
  if (method !== 'GET' && method !== 'HEAD') headers['X-Airmesh-CSRF'] = '1';
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let res: Response;
  try {
    res = await fetch('/api/v1' + path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: 'same-origin',
      cache: 'no-store',
    });
  } catch {
    throw new ApiError(0, 'network', 'The appliance cannot be reached. Check the network and that airmeshd is running.');
  }
  if (!res.ok) throw await toError(res, path);
  const text = await res.text();
  return (text ? JSON.parse(text) : {}) as T;
}

export async function toError(res: Response, path = ''): Promise<ApiError> {
  let code = 'http_' + res.status;
  let message = '';
  try {
    const doc = await res.json();
    if (doc && doc.error) {
      code = String(doc.error.code || code);
      message = String(doc.error.message || '');
    }
  } catch {
    /* not JSON: fall back to the status */
  }
  if (!message) message = `The appliance answered ${res.status} ${res.statusText || ''}`.trim() + '.';
  if (res.status === 401 && path !== '/login') onUnauthenticated();
  return new ApiError(res.status, code, capitalize(humanize(message)));
}

/** The appliance's terse validation messages, in words. */
export function humanize(m: string): string {
  if (/^expected \{"(name|user)"\} \(a-z 0-9 \. _ -\)$/i.test(m) || /^(name|owner|org id): 1-64 of a-z 0-9/.test(m)) {
    const what = /^owner/.test(m) ? 'The owner\'s name' : /^org id/.test(m) ? 'The ID' : 'The name';
    return `${what} must be 1 to 64 lowercase letters (a-z), digits or . _ - and start with a letter or digit.`;
  }
  return m;
}

/** Names of users, teams and organizations, as the appliance checks them (am_auth_valid_name):
 * null when fine, else what is wrong in words (shown as a hint while typing). */
export function nameProblem(v: string): string | null {
  if (!v) return null;
  if (v.length > 64) return `Too long: ${v.length} characters, at most 64.`;
  if (/[A-Z]/.test(v) && /^[A-Za-z0-9._-]+$/.test(v)) return 'Use lowercase letters: ' + v.toLowerCase() + '.';
  const bad = Array.from(new Set(v.replace(/[a-z0-9._-]/g, '').split(''))).join(' ');
  if (bad) return `Not allowed here: ${bad.replace(' ', '(space)')}. Use a-z, 0-9 and . _ - only.`;
  if (!/^[a-z0-9]/.test(v)) return 'Start with a letter or a digit.';
  return null;
}

function capitalize(s: string): string {
  return s ? s[0].toUpperCase() + s.slice(1) : s;
}

export function errorText(e: unknown): string {
  if (e instanceof ApiError) return e.message;
  if (e instanceof Error) return e.message;
  return String(e);
}

export interface Who {
  user: string;
  org: string;
  /** 1 viewer, 2 member, 3 admin, 4 owner */
  role: number;
  role_name?: string;
  /** The appliance administrator (the bootstrap admin): creates organizations. */
  superuser?: boolean;
}

export const ROLE_NAMES: Record<number, string> = { 1: 'viewer', 2: 'member', 3: 'admin', 4: 'owner' };
export const ROLE_VIEWER = 1;
export const ROLE_MEMBER = 2;
export const ROLE_ADMIN = 3;
export const ROLE_OWNER = 4;

/** "admin" → 3 (0 for an unknown name); numbers pass through. */
export function roleNumber(r: string | number): number {
  if (typeof r === 'number') return r;
  const n = Number(Object.entries(ROLE_NAMES).find(([, v]) => v === r)?.[0] || 0);
  return n;
}

/** What each role may do, beyond its own: one place, so pages agree. */
export const can = {
  writePods: (w: Who) => w.role >= ROLE_MEMBER,
  manageRunners: (w: Who) => w.role >= ROLE_ADMIN,
  manageUsers: (w: Who) => w.role >= ROLE_ADMIN,
  exportAudit: (w: Who) => w.role >= ROLE_OWNER,
  createOrgs: (w: Who) => !!w.superuser,
};

/** Issue 14 (the appliance decides, this only explains): a member takes control of, types into
 *  and stops only the pods they started, unless shared; admins and owners any pod. */
export const podStarter = (p: Pod) => (p.created_by || '').replace(/^user:/, '');
export const podOwnedBy = (w: Who, p: Pod) => podStarter(p) === w.user;
export const podLocked = (w: Who, p: Pod) => w.role >= ROLE_MEMBER && w.role < ROLE_ADMIN && !p.shared && !podOwnedBy(w, p);
export const podLockedWhy = (p: Pod) => `${podStarter(p) || 'Another user'} started this pod and has not shared it: only they or an admin may take control of or stop it.`;
/** Who may change a pod's sharing: its starter, admins and owners. */
export const canShare = (w: Who, p: Pod) => w.role >= ROLE_ADMIN || (w.role >= ROLE_MEMBER && podOwnedBy(w, p));

export interface User {
  id: string;
  org: string;
  role: string;
  disabled: boolean;
  created_ms: number;
  superuser: boolean;
  locked_until_ms: number;
  /** Unicode name shown instead of the id ("" = none: show the id). */
  display_name?: string;
}

export interface Team {
  id: string;
  name: string;
  members: string[];
  created_ms: number;
  display_name?: string;
}

export interface Org {
  id: string;
  name: string;
  created_ms: number;
  display_name?: string;
}

export interface ApiToken {
  id: string;
  name: string;
  user: string;
  role: string;
  created_ms: number;
  expires_ms: number;
}

export interface Runner {
  id: string;
  org: string;
  hostname: string;
  state: 'online' | 'offline' | 'revoked';
  last_heartbeat_ms: number;
  version: string;
  labels: Record<string, string>;
  cert_not_after_ms: number;
  enrolled_ms: number;
  capacity: number;
  revoked: boolean;
}

/** One preset of the agent catalog (GET /api/v1/agents) and the online runners that have it. */
export interface Agent {
  name: string;
  title: string;
  command: string[];
  prompt: 'argument' | 'typed';
  env: Record<string, string>;
  home_files: string[];
  notes: string;
  runners: { id: string; hostname: string; version: string; path: string }[];
}

export interface Pod {
  id: string;
  org: string;
  runner: string;
  repo: string;
  base_ref: string;
  branch: string;
  command: string[];
  env: Record<string, string>;
  limits: { memory: number; pids: number; cpu_millis: number };
  /** Egress policy: none | models | allow | host (README "Egress policies"). */
  network: string;
  /** With network allow: the host:ports its CONNECT proxy may reach. */
  egress_allow?: string[];
  keep_worktree: boolean;
  state: string;
  reason: string;
  limits_note: string;
  created_by: string;
  created_ms: number;
  started_ms: number;
  ended_ms: number;
  commit: string;
  recording: boolean;
  /** Other members may take control of and stop it (issue 14). */
  shared?: boolean;
  /** The agent catalog preset it was started from ("" = a plain command). */
  agent?: string;
  exit_code?: number;
  /** Optional unicode name (issue 14; "" = none). */
  display_name?: string;
  /** What its agent does while it runs: working | waiting | idle, '' unknown (agentstate.ts). */
  agent_state?: string;
  agent_state_ms?: number;
  /** Review (issue 13, pages/review.ts): "" | approved (pushed) | ready (approved, not pushed). */
  review_state?: string;
  pushed_to?: string;
  pushed_commit?: string;
  /** Started on an ended pod's branch (review comments) to continue it. */
  continue_branch?: boolean;
}

export interface AuditEvent {
  seq: number;
  time_ms: number;
  actor: string;
  org: string;
  action: string;
  target: string;
  result: string;
  source: string;
  details: unknown;
}

/** Pod states: the console's one list (the C one is am_pod_state in common/pod_state.h). */
export const POD_STATE = {
  pending: 'pending',
  starting: 'starting',
  running: 'running',
  exited: 'exited',
  failed: 'failed',
  stopped: 'stopped',
} as const;
export type PodState = (typeof POD_STATE)[keyof typeof POD_STATE];

const FINAL_STATES: readonly string[] = [POD_STATE.exited, POD_STATE.stopped, POD_STATE.failed];

export function podEnded(state: string): boolean {
  return FINAL_STATES.includes(state);
}
