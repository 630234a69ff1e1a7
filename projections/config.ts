import type { Projection } from './projection.ts';

// The configuration as set by ConfigSet events: key -> value. Defaults live in the domain,
// so an empty projection means "all defaults".
export const configProjection: Projection = {
  name: 'config',
  version: 1,
  apply(e, view) {
    if (e.type === 'ConfigSet') view.put(e.key, e.value);
  },
};
