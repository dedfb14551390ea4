import type { AdminDeps, AdminRoute } from './route.js';

/** The sessions API (`/api/…`). */
export function apiRoutes(_deps: AdminDeps): AdminRoute[] {
  return [];
}
