import { defineConfig } from 'vitest/config';

// e2e tests drive real qemu/libguestfs under TCG: minutes, not milliseconds.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    fileParallelism: false,
    pool: 'forks',
  },
});
