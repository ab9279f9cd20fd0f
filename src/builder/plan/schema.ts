// The image-set file (images/<distro>.yaml): raw zod schema. Normalisation and cross-field rules live in load.ts.
import { z } from 'zod';

const SIZE = /^[1-9][0-9]*(\.[0-9]+)?[KMGT]?$/;
const DURATION = /^[1-9][0-9]*(s|m|h)$/;
const NAME = /^[a-z0-9][a-z0-9-]*$/;
const DISTRO = /^[a-z0-9][a-z0-9.]*$/;

const size = z
  .string()
  .regex(SIZE, 'expected a size such as 6G, 512M or 20480M (K, M, G, T are binary units)');
const duration = z.string().regex(DURATION, 'expected a duration such as 90s, 45m or 2h');
const packages = z
  .array(z.string().regex(/^[A-Za-z0-9][A-Za-z0-9.+:_@-]*$/, 'expected a package name'))
  .min(1);

export const debootstrapSchema = z.strictObject({
  // written into the guest's sources.list and debootstrap's arguments: plain words only
  suite: z.string().regex(/^[a-z][a-z0-9-]*$/, 'expected a Debian suite or codename, such as bookworm'),
  mirror: z.url({ message: 'expected an http(s) URL of a Debian mirror' }),
  variant: z.enum(['minbase', 'buildd', 'fakechroot']).optional(),
  components: z
    .array(z.string().regex(/^[a-z][a-z0-9-]*$/, 'expected an archive component, such as main'))
    .optional(),
  packages: z.array(z.string().regex(/^[a-z0-9][a-z0-9.+-]*$/, 'expected a Debian package name')).default([]),
  // the kernel package: Debian's cloud flavour (linux-image-cloud-amd64) carries a quarter of the generic
  // one's modules and boots sooner; the generic one is the default, as a Debian install has it
  kernel: z
    .string()
    .regex(/^linux-image-[a-z0-9.+-]+$/, 'expected a Debian kernel package, such as linux-image-cloud-amd64')
    .default('linux-image-amd64'),
  // false: no /usr/share/doc (copyright files stay), info pages or message translations, in the base and
  // in every package a layer installs later (dpkg path-exclude); man pages stay
  docs: z.boolean().default(true),
  diskSize: size.default('6G'),
  hostname: z
    .string()
    .regex(/^[a-z0-9-]+$/)
    .optional(),
});

export const importSchema = z.strictObject({
  source: z.string().min(1),
  sha256: z.string().regex(/^[0-9a-f]{64}$/, 'expected 64 lowercase hex digits (sha256sum output)'),
});

export const installSchema = z.strictObject({
  location: z.string().min(1).optional(),
  kernel: z.string().min(1).optional(),
  initrd: z.string().min(1).optional(),
  answerFile: z.string().min(1),
  answerKind: z.enum(['kickstart', 'preseed']).optional(),
  osVariant: z.string().min(1),
  memory: z.number().int().min(512).max(1_048_576).default(2048),
  vcpus: z.number().int().min(1).max(64).default(2),
  diskSize: size.default('20G'),
  timeout: duration.default('90m'),
  extraArgs: z.array(z.string()).default([]),
  network: z.enum(['user', 'none']).default('user'),
});

export const stepSchema = z.strictObject({
  install: packages.optional(),
  // what these packages need, not the packages themselves (a deps-installed layer)
  dependenciesOf: packages.optional(),
  upgrade: z
    .literal(true, { message: 'expected true (upgrade every package to the newest available)' })
    .optional(),
  script: z.string().min(1).optional(),
  run: z.string().min(1).optional(),
  upload: z
    .strictObject({
      from: z.string().min(1),
      to: z.string().regex(/^\//, 'expected an absolute path inside the guest'),
      mode: z
        .string()
        .regex(/^0?[0-7]{3,4}$/, 'expected an octal mode such as 0644')
        .optional(),
    })
    .optional(),
});

const REPO_NAME = /^[a-z0-9][a-z0-9-]*$/;
export const repoSchema = z.strictObject({
  name: z.string().regex(REPO_NAME, 'expected lowercase letters, digits and dashes, such as local-updates'),
  url: z
    .string()
    .regex(
      /^(https?:\/\/[^\s'"\\]+|file:[^\s'"\\]+)$/,
      'expected an http(s):// URL, or file:DIR on the build host (file:///absolute, or file:relative/to/the/set)',
    ),
  // deb only: written into the guest's sources and into paths: plain words (or ./ for a flat repository)
  suite: z
    .string()
    .regex(
      /^([a-z][a-z0-9.-]*|\.\/)$/,
      'expected a suite such as bookworm-security, or ./ for a flat repository',
    )
    .optional(),
  components: z
    .array(z.string().regex(/^[a-z][a-z0-9-]*$/, 'expected an archive component, such as main'))
    .optional(),
  trusted: z.boolean().default(false),
  // the layer's own steps configure it (a script, a release package): watched for changes, not written
  watchOnly: z.boolean().default(false),
});

export const layerSchema = z.strictObject({
  name: z.string().regex(NAME, 'expected lowercase letters, digits and dashes, such as engine-installed'),
  description: z.string().optional(),
  parent: z.string().min(1).optional(),
  debootstrap: debootstrapSchema.optional(),
  import: importSchema.optional(),
  install: installSchema.optional(),
  steps: z.array(stepSchema).optional(),
  network: z.boolean().default(true),
  repos: z.array(repoSchema).default([]),
  refresh: z.enum(['upstream', 'daily', 'never']).optional(),
});

export const imageSetSchema = z.strictObject({
  distro: z.string().regex(DISTRO, 'expected lowercase letters and digits, such as el9stream or debian12'),
  description: z.string().optional(),
  family: z.enum(['deb', 'rpm']),
  selinux: z.boolean().default(false),
  variables: z.record(z.string().regex(/^[a-z_][a-z0-9_]*$/), z.string()).default({}),
  customize: z
    .strictObject({
      memory: z.number().int().min(512).max(65536).default(1536),
    })
    .default({ memory: 1536 }),
  layers: z.array(layerSchema).min(1, 'an image set needs at least one layer'),
});

export type RawImageSet = z.infer<typeof imageSetSchema>;
export type RawLayer = z.infer<typeof layerSchema>;
export type RawStep = z.infer<typeof stepSchema>;
