// Runs `npm install` (bound by the lock file) when the packages are not installed yet, so
// `npm test` and `npm run demo` work straight after `git clone`.
import { existsSync } from 'node:fs';
import { execSync } from 'node:child_process';

if (!existsSync(new URL('../node_modules/.package-lock.json', import.meta.url))) {
  execSync('npm install --no-audit --no-fund', { stdio: 'inherit', cwd: new URL('..', import.meta.url) });
}
