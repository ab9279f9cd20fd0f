// Deploy scripts: each file is sent over SSH to `bash -s` on its VM as it is (uploaded, never
// interpolated); one VM's scripts run in order, VMs at once. A failing script names itself and its output.
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { OstError, ToolError } from '../core/errors.js';
import { runArgv } from '../tools/run-tool.js';
import { sshArgv } from '../tools/ssh.js';
import type { EnvVm } from './env/model.js';
import type { VmRecord } from './env-dir/record.js';

export async function runDeployScripts(
  vms: readonly EnvVm[],
  records: readonly VmRecord[],
  logDir: string,
  signal?: AbortSignal,
): Promise<void> {
  await Promise.all(
    vms.map(async (vm) => {
      const r = records.find((x) => x.name === vm.name) as VmRecord;
      const log = path.join(logDir, `deploy-${vm.name}.log`);
      for (const script of vm.deployScripts) {
        const body = await fs.readFile(script.file, 'utf8');
        await runArgv(sshArgv({ host: r.address, port: 22, user: 'root', privateKey: r.key }, 'bash -s'), {
          input: body,
          signal,
          logFile: log,
        }).catch((err: unknown) => {
          const tail =
            err instanceof ToolError
              ? err.tail
                  .slice(-10)
                  .map((l) => `  | ${l}`)
                  .join('\n')
              : '';
          throw new OstError(
            `deploy script ${script.file} failed on ${vm.name}${tail ? `:\n${tail}` : ''}`,
            'fix the script and run ost up again (--keep-on-failure leaves the VMs up to look at)',
            err,
          );
        });
      }
    }),
  );
}
