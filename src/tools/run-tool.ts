// Run an argv whose first element is a known system tool, failing with the install hint when it is missing.
import { InternalError } from '../core/errors.js';
import { type ExecOptions, type ExecResult, run } from '../core/exec.js';
import { requireTool, TOOL_PACKAGES, type ToolName } from '../core/require-tool.js';

function isToolName(n: string): n is ToolName {
  return Object.hasOwn(TOOL_PACKAGES, n);
}

/** Run `argv` (argv[0] is the tool); a missing tool is reported with its apt and dnf packages. */
export function runArgv(argv: readonly string[], opts?: ExecOptions): Promise<ExecResult> {
  const [file, ...args] = argv;
  if (file === undefined) throw new InternalError('runArgv: empty argv');
  const resolved = isToolName(file) ? requireTool(file) : file;
  return run(resolved, args, opts);
}
