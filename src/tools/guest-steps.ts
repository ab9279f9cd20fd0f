// Build steps as the guest runs them: a derived layer's repositories and steps (and a custom layer's
// packages) turned into shell commands and file copies for one guestfish session (guestfish-session.ts
// runs them, in order, in one appliance boot), and the package commands of each family.
import * as path from 'node:path';
import { InternalError } from '../core/errors.js';
import { shellQuote } from '../core/exec.js';

/** Package-manager family of a guest. */
export type Family = 'deb' | 'rpm';

/**
 * One customisation, in order: install packages, install what packages need (not them), upgrade all, run a
 * script file, run a command, upload a file.
 */
export type Step =
  | { kind: 'install'; packages: string[] }
  | { kind: 'dependencies'; packages: string[] }
  | { kind: 'upgrade' }
  | { kind: 'script'; file: string }
  | { kind: 'run'; command: string }
  | { kind: 'upload'; from: string; to: string; mode?: string }
  | { kind: 'copy-in'; from: string; toDir: string };

/** What a guestfish session runs: shell commands, folders copied in, files uploaded (with their mode). */
export type CommandStep = Extract<Step, { kind: 'run' | 'copy-in' | 'upload' }>;

/** A package repository written into the guest before the steps (file:// ones are copied in). */
export interface GuestRepo {
  name: string;
  /** http(s):// URL, or file:///dir on the build host. */
  url: string;
  suite?: string;
  components?: string[];
  trusted: boolean;
}

/** Where a file:// repository's copy lives in the guest (it stays: children install from it too). */
export const GUEST_REPO_DIR = '/var/lib/ost-repos';

/**
 * apt-get's options for a build: no questions, changed config files kept, and no fsync per unpacked file
 * (the appliance syncs the disk when it shuts down).
 */
const APT_OPTIONS =
  '-o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold -o Dpkg::Options::=--force-unsafe-io -y';

/** Upgrade every package, non-interactively, keeping changed config files. */
export function upgradeCommand(family: Family): string {
  return family === 'deb'
    ? `apt-get update && DEBIAN_FRONTEND=noninteractive apt-get ${APT_OPTIONS} full-upgrade`
    : 'dnf -y upgrade --refresh';
}

/** Install packages (and what they need) from the guest's repositories. */
export function installCommand(family: Family, packages: readonly string[]): string {
  const names = packages.map(shellQuote).join(' ');
  return family === 'deb'
    ? `apt-get update && DEBIAN_FRONTEND=noninteractive apt-get ${APT_OPTIONS} install ${names}`
    : `dnf -y install ${names}`;
}

/**
 * Install what `packages` need, as installing them would (recommends included on deb), but not the packages:
 * a deps-installed layer, on which a layer that installs them (or a build of them, --with-repo) fetches and
 * unpacks only those. deb: the new packages an `apt-get install` of them would add (its simulation's `Inst`
 * lines) less the named ones, installed and marked automatic, as a direct install leaves them. rpm: the
 * packages dnf's transaction for them downloads, less the named ones, installed and marked as dependencies.
 */
/**
 * sed: the package name of each new package in an apt-get simulation (`Inst <name> (<version> ...)`; an
 * upgrade of an installed one reads `Inst <name> [<old>] (<new> ...)` and is left to the install).
 */
const INST_NAME = String.raw`s/^Inst \([^ ]*\) (.*/\1/p`;

export function dependenciesCommand(family: Family, packages: readonly string[]): string {
  const names = packages.map(shellQuote).join(' ');
  const named = packages.map((p) => `-e ${shellQuote(p)}`).join(' ');
  // the query goes to a file first: a failed one (an unknown package) fails the step, not just the pipe
  const only = `{ grep -vxF ${named} || true; }`;
  if (family === 'deb')
    return [
      'apt-get update',
      `apt-get ${APT_OPTIONS} -s install ${names} > /tmp/ost-deps.sim`,
      `deps=$(sed -n ${shellQuote(INST_NAME)} /tmp/ost-deps.sim | ${only})`,
      'rm -f /tmp/ost-deps.sim',
      `if [ -n "$deps" ]; then DEBIAN_FRONTEND=noninteractive apt-get ${APT_OPTIONS} install $deps && apt-mark auto $deps >/dev/null; fi`,
    ].join(' && ');
  // rpm: what dnf's own transaction for them would bring (downloaded, not installed), less them: a
  // repoquery closure would list every provider of a requirement (curl and curl-minimal), which conflict
  const dir = '/tmp/ost-deps';
  return [
    `rm -rf ${dir}`,
    `dnf -y install --downloadonly --downloaddir=${dir} ${names}`,
    `files=$(for f in ${dir}/*.rpm; do [ -e "$f" ] || continue; n=$(rpm -qp --qf '%{NAME}' "$f") || exit 1; printf '%s\\n' "$n" | grep -qxF ${named} || echo "$f"; done)`,
    `if [ -n "$files" ]; then dnf -y install $files && dnf -y mark remove $(rpm -qp --qf '%{NAME}\\n' $files); fi`,
    `rm -rf ${dir}`,
  ].join(' && ');
}

/** Guest steps that add one repository: a file:// one copied in first, then its apt list or yum .repo file. */
export function repoSteps(family: Family, r: GuestRepo): CommandStep[] {
  const steps: CommandStep[] = [];
  let url = r.url;
  if (url.startsWith('file://')) {
    const hostDir = decodeURIComponent(new URL(url).pathname).replace(/\/+$/, '');
    const dest = `${GUEST_REPO_DIR}/${r.name}`;
    const staging = `${GUEST_REPO_DIR}/.in-${r.name}`;
    const base = path.basename(hostDir) || r.name;
    steps.push(
      { kind: 'copy-in', from: hostDir, toDir: staging },
      {
        kind: 'run',
        command: `rm -rf ${dest} && mv ${staging}/${shellQuote(base)} ${dest} && rmdir ${staging}`,
      },
    );
    url = family === 'deb' ? `file:${dest}` : `file://${dest}`;
  }
  let file: string;
  let text: string;
  if (family === 'deb') {
    const opts = r.trusted ? '[trusted=yes] ' : '';
    file = `/etc/apt/sources.list.d/ost-${r.name}.list`;
    text = `deb ${opts}${url} ${r.suite ?? './'}${r.components?.length ? ` ${r.components.join(' ')}` : ''}\n`;
  } else {
    file = `/etc/yum.repos.d/ost-${r.name}.repo`;
    text = [
      `[ost-${r.name}]`,
      `name=ost-${r.name}`,
      `baseurl=${url}`,
      'enabled=1',
      `gpgcheck=${r.trusted ? 0 : 1}`,
      '',
    ].join('\n');
  }
  steps.push({
    kind: 'run',
    command: `mkdir -p ${path.dirname(file)} && printf %s ${shellQuote(text)} > ${file}`,
  });
  return steps;
}

/**
 * A derived layer's repositories and steps as guest steps, in order. A script is copied into a folder of
 * its own under /tmp, run there (its #! line decides the interpreter) and removed.
 */
export function layerSteps(
  family: Family,
  repos: readonly GuestRepo[],
  steps: readonly Step[],
): CommandStep[] {
  const out: CommandStep[] = repos.flatMap((r) => repoSteps(family, r));
  steps.forEach((s, i) => {
    switch (s.kind) {
      case 'install':
        out.push({ kind: 'run', command: installCommand(family, s.packages) });
        break;
      case 'dependencies':
        out.push({ kind: 'run', command: dependenciesCommand(family, s.packages) });
        break;
      case 'upgrade':
        out.push({ kind: 'run', command: upgradeCommand(family) });
        break;
      case 'script': {
        const dir = `/tmp/ost-step-${i + 1}`;
        const file = `${dir}/${shellQuote(path.basename(s.file))}`;
        out.push(
          { kind: 'copy-in', from: s.file, toDir: dir },
          { kind: 'run', command: `chmod 0755 ${file} && ${file} && rm -rf ${dir}` },
        );
        break;
      }
      case 'run':
      case 'upload':
      case 'copy-in':
        out.push(s);
        break;
      default: {
        const never: never = s;
        throw new InternalError(`unknown step ${JSON.stringify(never)}`);
      }
    }
  });
  return out;
}

/** Where each family's package manager keeps downloaded packages (mounted on tmpfs during a build). */
export const PACKAGE_CACHE: Record<Family, string[]> = {
  deb: ['/var/cache/apt', '/var/lib/apt/lists'],
  rpm: ['/var/cache/dnf'],
};

/**
 * What a build leaves that no VM needs, removed after the steps. SSH host keys above all: each VM makes its
 * own at first boot, but a package upgrade (Debian's openssh-server postinst) or a step may create them in
 * the layer, and every VM of it would then share them. Then package managers' backups and debug logs.
 */
export const BUILD_LEFTOVERS: Record<Family, string[]> = {
  deb: [
    '/etc/ssh/ssh_host_*_key',
    '/etc/ssh/ssh_host_*_key.pub',
    '/var/lib/dpkg/*-old',
    '/var/cache/debconf/*-old',
    '/var/log/apt/term.log',
    '/var/log/apt/eipp.log.xz',
  ],
  rpm: [
    '/etc/ssh/ssh_host_*_key',
    '/etc/ssh/ssh_host_*_key.pub',
    '/var/log/dnf.log',
    '/var/log/dnf.librepo.log',
    '/var/log/hawkey.log',
  ],
};

/**
 * Guest commands around the user's steps: the package cache goes on tmpfs (downloaded packages never land
 * in the layer) and, on Debian, policy-rc.d stops package scripts from starting daemons in the appliance.
 * Afterwards BUILD_LEFTOVERS are removed. (/tmp stays on disk: scripts are copied into it and run from there.)
 */
export function buildTimeGuestSetup(family: Family): { before: string; after: string } {
  const dirs = PACKAGE_CACHE[family];
  const mounts = dirs.map((d) => `mkdir -p ${d} && mount -t tmpfs -o mode=0755 ost-pkgcache ${d}`);
  const umount = `umount ${[...dirs].reverse().join(' ')}`;
  const cleanup = `rm -f ${BUILD_LEFTOVERS[family].join(' ')}`;
  if (family === 'deb') {
    return {
      before:
        `${mounts.join(' && ')} && mkdir -p /var/cache/apt/archives/partial /var/lib/apt/lists/partial` +
        " && printf '#!/bin/sh\\nexit 101\\n' > /usr/sbin/policy-rc.d && chmod 0755 /usr/sbin/policy-rc.d",
      after: `rm -f /usr/sbin/policy-rc.d && ${umount} && ${cleanup}`,
    };
  }
  return { before: mounts.join(' && '), after: `${umount} && ${cleanup}` };
}

/** A repository of custom packages (ost up --custom-repo, build-images --with-repo) as the guest sees it. */
export interface CustomGuestRepo {
  /** `custom1`, `custom2`, ...: the guest's repo id is `ost-<name>`. */
  name: string;
  /** A staged folder on the build host (packages + metadata), copied to CUSTOM_REPO_DIR/<its basename>. */
  hostDir?: string;
  /** Or an http(s) URL the guest reads (needs the appliance's network). */
  url?: string;
}

export interface CustomPackagesSpec {
  repos: CustomGuestRepo[];
  /** Packages to install besides upgrading the installed ones (--custom-install). */
  install: string[];
  /** Leave the repos enabled in the layer (later test steps install from them); else written disabled. */
  enabled: boolean;
}

/** Where the custom repositories' copies live in the guest. */
export const CUSTOM_REPO_DIR = '/var/lib/ost-custom';
/** Apt sources used only while upgrading from the custom repos (the image's own are left out). */
const CUSTOM_APT_PARTS = '/etc/ost-custom-apt';

/**
 * Packages OST's deploy fixture never upgrades from custom repos (dnf upgrade -x): release packages and
 * the appliance / node images, which are not what a patch under test is.
 */
export const OST_UPGRADE_EXCLUDES = [
  'ovirt-release-master',
  'ovirt-release-master-tested',
  'ovirt-engine-appliance',
  'rhvm-appliance',
  'ovirt-node-ng-image-update',
  'redhat-virtualization-host-image-update',
  'ovirt-release-host-node',
];

function guestUrl(family: Family, r: CustomGuestRepo): string {
  if (r.url) return r.url;
  if (!r.hostDir) throw new InternalError(`custom repo ${r.name} has neither a folder nor a URL`);
  const dir = `${CUSTOM_REPO_DIR}/${r.hostDir.replace(/\/+$/, '').split('/').pop()}`;
  return family === 'deb' ? `file:${dir}` : `file://${dir}`;
}

function aptSource(url: string, enabled: boolean): string {
  return `Types: deb\nURIs: ${url}\nSuites: ./\nTrusted: yes\nEnabled: ${enabled ? 'yes' : 'no'}\n`;
}

/**
 * The steps that upgrade an image from custom repositories only, as OST's deploy fixture does at run time
 * (its own repos disabled, no GPG check, OST's excludes), install the listed new packages, and leave the
 * repositories configured (enabled or not). Installed packages are only upgraded: a package of the repo
 * that the image lacks is installed only when listed.
 */
export function customPackageSteps(family: Family, spec: CustomPackagesSpec): CommandStep[] {
  const steps: CommandStep[] = [];
  for (const r of spec.repos)
    if (r.hostDir) steps.push({ kind: 'copy-in', from: r.hostDir, toDir: CUSTOM_REPO_DIR });
  const install = spec.install.map(shellQuote).join(' ');
  if (family === 'deb') {
    const parts = spec.repos.map(
      (r) =>
        `printf %s ${shellQuote(aptSource(guestUrl(family, r), true))} > ${CUSTOM_APT_PARTS}/ost-${r.name}.sources`,
    );
    const apt = `apt-get -o Dir::Etc::SourceList=/dev/null -o Dir::Etc::SourceParts=${CUSTOM_APT_PARTS} ${APT_OPTIONS}`;
    steps.push({
      kind: 'run',
      command: [
        `mkdir -p ${CUSTOM_APT_PARTS}`,
        ...parts,
        `${apt} update`,
        // one apt run: `upgrade` with package names also installs those (apt >= 1.1), keeping the others'
        // manual/auto marks as they were (an `install` of the upgraded ones would mark them manual)
        `DEBIAN_FRONTEND=noninteractive ${apt} upgrade --with-new-pkgs${install ? ` ${install}` : ''}`,
        `rm -rf ${CUSTOM_APT_PARTS}`,
      ].join(' && '),
    });
    for (const r of spec.repos)
      steps.push({
        kind: 'run',
        command: `printf %s ${shellQuote(aptSource(guestUrl(family, r), spec.enabled))} > /etc/apt/sources.list.d/ost-${r.name}.sources`,
      });
    return steps;
  }
  for (const r of spec.repos) {
    const repo = [
      `[ost-${r.name}]`,
      `name=ost ${r.name} (custom packages)`,
      `baseurl=${guestUrl(family, r)}`,
      `enabled=${spec.enabled ? 1 : 0}`,
      'gpgcheck=0',
      '',
    ].join('\n');
    steps.push({
      kind: 'run',
      command: `printf %s ${shellQuote(repo)} > /etc/yum.repos.d/ost-${r.name}.repo`,
    });
  }
  const dnf = [
    'dnf -y --nogpgcheck --disableplugin=versionlock',
    "--disablerepo='*'",
    ...spec.repos.map((r) => `--enablerepo=ost-${r.name}`),
  ].join(' ');
  steps.push({
    kind: 'run',
    command: [
      `${dnf} upgrade ${OST_UPGRADE_EXCLUDES.map((x) => `-x ${x}`).join(' ')}`,
      ...(install ? [`${dnf} install ${install}`] : []),
    ].join(' && '),
  });
  return steps;
}
