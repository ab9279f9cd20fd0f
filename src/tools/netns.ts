// `ip netns exec`: running a program inside a named network namespace.

/** argv prefix that runs a command inside network namespace `ns` (none: where ost itself runs). */
export const inNetns = (ns: string | undefined): string[] => (ns ? ['ip', 'netns', 'exec', ns] : []);
