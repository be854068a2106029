/**
 * Preloaded with `node --import` (NODE_OPTIONS), writes the URL of every module the
 * process loads through `import` to the file named by KEYGATE_MODULE_TRACE, one a line:
 * how a test sees what a command loaded.
 */
import { register } from 'node:module';

register('./module-trace-hooks.mjs', import.meta.url, { data: { file: process.env.KEYGATE_MODULE_TRACE } });
