// Import base: an existing image (path or URL) checked against its sha256, converted to a standalone qcow2.
import { createWriteStream } from 'node:fs';
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { InternalError, OstError } from '../../core/errors.js';
import { fileSha256 } from '../../core/fsutil.js';
import { fetchWithUserinfo, redactUrl } from '../../core/redact-url.js';
import type { Action, LayerContext } from './types.js';

export function importActions(ctx: LayerContext): Action[] {
  const b = ctx.layer.base;
  if (b?.kind !== 'import') throw new InternalError(`layer ${ctx.layer.name} is not an import base`);
  const local = b.isUrl ? path.join(ctx.work, 'download') : b.source;
  const actions: Action[] = [];
  if (b.isUrl) {
    actions.push({
      kind: 'internal',
      title: `download ${redactUrl(b.source)}`,
      run: async () => {
        await fs.mkdir(ctx.work, { recursive: true });
        const res = await fetchWithUserinfo(b.source);
        if (!res.ok || !res.body)
          throw new OstError(`download of ${redactUrl(b.source)} failed: HTTP ${res.status}`);
        await pipeline(
          Readable.fromWeb(res.body as import('node:stream/web').ReadableStream),
          createWriteStream(local),
        );
      },
    });
  }
  actions.push(
    {
      kind: 'internal',
      title: 'check sha256',
      run: async () => {
        const got = await fileSha256(local);
        if (got !== b.sha256) {
          throw new OstError(
            `sha256 of ${redactUrl(b.source)} is ${got}, but the image set says ${b.sha256}`,
            'fix import.sha256 in the image-set file if the image changed on purpose',
          );
        }
      },
    },
    {
      kind: 'exec',
      title: 'convert to a standalone qcow2',
      argv: ['qemu-img', 'convert', '-O', 'qcow2', local, ctx.tmpImage],
    },
  );
  return actions;
}
