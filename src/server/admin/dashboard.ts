import type { AdminDeps, AdminRoute } from './route.js';

/** The dashboard (`/` and its assets). */
export function dashboardRoutes(_deps: AdminDeps): AdminRoute[] {
  return [];
}
