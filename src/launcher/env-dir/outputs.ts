// What an env dir holds for people and OST's harness, written together: env.json, the Ansible inventory,
// ssh_config, and OST's hosts and env.sh (an OST suite's deployment dir gets its own hosts and env.sh).
import * as path from 'node:path';
import { atomicWriteFile } from '../../core/fsutil.js';
import { publishDeployment } from './deployment.js';
import { imageVars, renderEnvSh, renderHosts } from './ost-files.js';
import { type EnvRecord, renderInventory, renderSshConfig, writeRecord } from './record.js';

/**
 * Write env.json, inventory, ssh_config, hosts and env.sh into the env dir, and, for an OST suite, what
 * its harness reads (hosts, env.sh) into the deployment dir as the dir's owner.
 */
export async function writeOutputs(r: EnvRecord): Promise<void> {
  await writeRecord(r);
  await atomicWriteFile(path.join(r.workdir, 'inventory'), renderInventory(r));
  await atomicWriteFile(path.join(r.workdir, 'ssh_config'), renderSshConfig(r));
  await atomicWriteFile(path.join(r.workdir, 'hosts'), renderHosts(r));
  await atomicWriteFile(
    path.join(r.workdir, 'env.sh'),
    renderEnvSh(r, { ostRepo: r.ostRepo, uri: r.uri, ...imageVars(r) }),
  );
  await publishDeployment(r);
}
