// Injected by build.ts into the CommonJS bundles that use import.meta.url (an ES module's own
// URL): as CommonJS, it is the bundle file's URL. Injected rather than a banner, so that each
// bundle keeps "use strict" as its first statement.
import { pathToFileURL } from 'node:url';

export const __importMetaUrl = pathToFileURL(__filename).href;
