// Every page of the console: its address (#/name), its title, the capability that shows it (the
// gateway's GET /v1/console/capabilities names the pages this person's policy opens) and the module
// that draws it. A page module exports render(main, ctx) and may return a function that stops what
// it started (polling, a followed log) when the person leaves the page.

export const SECTIONS = [
  {
    title: 'Data science',
    pages: [
      { name: 'datasets', title: 'Datasets', load: () => import('./pages/datasets.js') },
      { name: 'jobs', title: 'Jobs', load: () => import('./pages/jobs.js') },
      { name: 'submit', title: 'Submit a job', load: () => import('./pages/submit.js') },
      { name: 'quota', title: 'Quota', load: () => import('./pages/quota.js') },
      { name: 'certificate', title: 'Certificate', load: () => import('./pages/certificate.js') },
    ],
  },
  // The auditor's pages and IT's, each named as the capability that opens it.
  {
    title: 'Audit',
    pages: [
      { name: 'audit', title: 'Audit trail', load: () => import('./pages/audit.js') },
      { name: 'lineage', title: 'Lineage', load: () => import('./pages/lineage.js') },
    ],
  },
  {
    title: 'Administration',
    pages: [
      { name: 'policy', title: 'Policy', load: () => import('./pages/policy.js') },
      { name: 'can_i', title: 'Can I?', load: () => import('./pages/can-i.js') },
      { name: 'usage', title: 'Compute', load: () => import('./pages/usage.js') },
      { name: 'certificates', title: 'Certificates', load: () => import('./pages/certificates.js') },
    ],
  },
];

/** The pages this person may see, by section (a section with none is left out). */
export function visibleSections(capabilities) {
  const open = new Set(capabilities.pages);
  return SECTIONS.map((s) => ({ ...s, pages: s.pages.filter((p) => open.has(p.name)) })).filter((s) => s.pages.length > 0);
}

export function findPage(name) {
  for (const s of SECTIONS) for (const p of s.pages) if (p.name === name) return p;
  return undefined;
}
