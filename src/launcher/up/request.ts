// Every flag-combination rule of `ost up`, in one place: the CLI checks its flags with it before anything
// is made, and `up()` checks its options with it again (library callers, --checkpoint-cache). All problems
// are reported at once, as one usage error (exit 2).
import { UsageError } from '../../core/errors.js';
import type { Environment } from '../env/model.js';
import { ENV_ID, type IpMode } from '../net/layout.js';

/** What the user asked for, as far as the rules need it. */
export interface UpRequest {
  env: Environment;
  /** --id */
  id?: string;
  /** --ipv4-only / --ipv6-only (the CLI's flags), or the mode they make (library callers). */
  ipv4Only?: boolean;
  ipv6Only?: boolean;
  ipMode?: IpMode;
  /** --deploy (OST suites; ost-env suites always deploy). */
  deploy?: boolean;
  /** false: --no-wait. */
  wait?: boolean;
  /** --from: the checkpoint's name and the id of the env it was taken of (once it is read). */
  from?: { name: string; envId?: string };
  isolated?: boolean;
  checkpointCache?: boolean;
  /** --custom-repo / --custom-install. */
  customRepos?: readonly string[];
  customInstall?: readonly string[];
  /** --dry-run */
  dryRun?: boolean;
  /** --deployed (`require`) or --deployed=auto. */
  deployed?: 'require' | 'auto';
}

/** What the rules decide, for the plan. */
export interface CheckedRequest {
  ipMode: IpMode;
  /** The deploy scripts run (ost-env suites that have some; OST suites with --deploy; never --from). */
  deploy: boolean;
}

/** Whether the suite's deploy scripts run: ost-env suites always; OST suites only with --deploy. */
export function willDeploy(env: Environment, deployFlag: boolean | undefined): boolean {
  return (
    (env.vms.some((vm) => vm.deployScripts.length > 0) || (env.hostDeployScripts?.length ?? 0) > 0) &&
    (env.kind !== 'ost-json' || deployFlag === true)
  );
}

interface Problem {
  message: string;
  hint?: string;
}

/** Every rule that the request breaks, in the order a user reads the flags. */
export function requestProblems(r: UpRequest): Problem[] {
  const out: Problem[] = [];
  const add = (message: string, hint?: string) => out.push({ message, hint });
  const ostSuite = r.env.kind === 'ost-json';
  const deploys = willDeploy(r.env, r.deploy);
  const custom = (r.customRepos?.length ?? 0) > 0 || (r.customInstall?.length ?? 0) > 0;
  if ((r.customInstall?.length ?? 0) > 0 && (r.customRepos?.length ?? 0) === 0)
    add(
      `--custom-install ${r.customInstall?.join(' ')}: installs from custom repos, and none is given`,
      'add --custom-repo DIR|URL with the packages',
    );
  if (r.ipv4Only && r.ipv6Only)
    add('--ipv4-only and --ipv6-only exclude each other', 'give one of them, or neither for both families');
  if (r.id !== undefined && !ENV_ID.test(r.id)) add(`--id ${r.id}: an env id is 8 lowercase hex digits`);
  if (r.isolated && !r.from)
    add(
      '--isolated starts a second env from a checkpoint: it needs --from',
      'give --from <checkpoint>, or leave out --isolated',
    );
  const ipv6Only = r.ipv6Only === true || r.ipMode === 'ipv6';
  if (r.isolated && r.from && ostSuite && ipv6Only)
    add(
      "--ipv6-only's SOCKS helper listens on the host's side of the management network, which an --isolated env keeps in its namespace",
      'leave out one of them',
    );
  if (r.deployed) {
    if (r.from) add('--deployed starts from deployed images, --from from a checkpoint', 'give one of them');
    if (custom)
      add(
        '--deployed starts the VMs as their deploy left them: --custom-repo / --custom-install cannot apply to them',
        'leave out one of them',
      );
  }
  if (r.wait === false && deploys && !r.from && !r.checkpointCache && r.deployed !== 'require')
    add(
      `--no-wait: suite ${r.env.suite} has deploy scripts, which run over SSH once the VMs answer`,
      ostSuite ? 'leave out --deploy (OST runs them itself), or --no-wait' : 'leave out --no-wait',
    );
  if (r.checkpointCache) {
    if (custom)
      add(
        '--checkpoint-cache restores VMs as they were: --custom-repo / --custom-install cannot apply to them',
        'leave out one of them',
      );
    if (r.wait === false)
      add('--checkpoint-cache checkpoints the env once every VM is ready: --no-wait does not apply');
    if (r.from) add('--from and --checkpoint-cache exclude each other', 'give one of them');
  } else if (r.from) {
    if (custom)
      add(
        '--from restores VMs as they were: --custom-repo / --custom-install cannot apply to them',
        'leave out one of them',
      );
    if (r.wait === false)
      add('--from sets each guest clock over SSH after the restore: --no-wait does not apply');
    // a restored VM keeps its domain name and UUID, and the names carry the id: the env is the one the
    // checkpoint was taken of, under its id (an --isolated one gets a new id)
    if (!r.isolated && r.id && r.from.envId && r.id !== r.from.envId)
      add(
        `--id ${r.id}: an env from checkpoint ${r.from.name} has the id of the env it was taken of, ${r.from.envId}`,
        'leave out --id',
      );
  }
  return out;
}

/** Check the request: every broken rule in one UsageError, else what the rules decide. */
export function checkUpRequest(r: UpRequest): CheckedRequest {
  const problems = requestProblems(r);
  const [only] = problems;
  if (only && problems.length === 1) throw new UsageError(only.message, only.hint);
  if (problems.length > 1)
    throw new UsageError(
      `${problems.length} problems with the options of ost up:\n${problems.map((p) => `  ${p.message}${p.hint ? ` (${p.hint})` : ''}`).join('\n')}`,
      'correct each of them and run it again',
    );
  const ipMode: IpMode = r.ipMode ?? (r.ipv4Only ? 'ipv4' : r.ipv6Only ? 'ipv6' : 'dual');
  return { ipMode, deploy: willDeploy(r.env, r.deploy) && !r.from };
}
