// Builds (or finds) the shared debian12 e2e image set outside vitest, so scripts/test.sh can make it in the
// background while the lint, the type check, the unit tests and the e2e files that need no image set run:
// the set's base is a debootstrap from the Debian mirror, mostly waiting on the network.
// Run: npx vite-node test/e2e/prepare-shared.ts (as root, like the e2e files). Exit 0 once the set is ready.
import { sharedImages } from './shared-images.js';

const set = await sharedImages();
console.log(`shared debian12 set ${set.reused ? 'reused' : `built in ${set.buildSeconds} s`}: ${set.dir}`);
