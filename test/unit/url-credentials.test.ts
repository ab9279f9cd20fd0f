// Repository URLs with credentials (`https://user:pass@host/…`, issue 28): the credentials are sent to the
// server, never recorded — not in manifests' upstream states, custom repos' sources, RPM descriptions, logs.
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LayerManifest } from '../../src/builder/build-dir.js';
import { stageCustomRepos } from '../../src/builder/custom/repos.js';
import { upstreamLines } from '../../src/builder/rpm/pack.js';
import { fetchState } from '../../src/builder/upstream.js';
import { formatCommand } from '../../src/core/quote.js';
import { redactUrl, redactUrlsIn } from '../../src/core/redact-url.js';
import { tempTree } from '../helpers/sets.js';

describe('redactUrl', () => {
  it('drops the userinfo, up to the authority’s last @, and nothing else', () => {
    expect(redactUrl('https://user:pass@host/path')).toBe('https://host/path');
    expect(redactUrl('http://token@mirror.example:8080/debian/')).toBe('http://mirror.example:8080/debian/');
    expect(redactUrl('https://u:p@ss@host/x?q=a@b#f@g')).toBe('https://host/x?q=a@b#f@g');
    for (const same of [
      'https://host/a@b',
      'http://host?x=@',
      'file:///srv/a@b/repo',
      'file:local',
      'not a url',
    ])
      expect(redactUrl(same)).toBe(same);
  });

  it('in free text and in the command lines logs show, every URL', () => {
    expect(redactUrlsIn('deb https://u:p@h/debian bookworm; rpm http://x:y@h2/el9')).toBe(
      'deb https://h/debian bookworm; rpm http://h2/el9',
    );
    expect(formatCommand(['debootstrap', 'bookworm', '/t', 'http://u:secret@mirror/debian'])).toBe(
      'debootstrap bookworm /t http://mirror/debian',
    );
  });
});

describe('a repository URL with credentials is recorded without them', () => {
  let server: Server;
  let port = 0;
  const auth: (string | undefined)[] = [];
  const authorised = (req: IncomingMessage) =>
    req.headers.authorization === `Basic ${Buffer.from('user:s3cret').toString('base64')}`;
  beforeAll(async () => {
    server = createServer((req, res) => {
      auth.push(req.headers.authorization);
      if (!authorised(req)) {
        res.statusCode = 401;
        res.end();
      } else if (req.url === '/debian/dists/bookworm/InRelease')
        res.end('Origin: x\nDate: Tue, 24 Nov 2026 08:00:00 UTC\n');
      else if (req.url === '/flat/Packages')
        res.end(`Package: probe\nVersion: 1.0\nArchitecture: all\nSHA256: ${'ab'.repeat(32)}\n`);
      else {
        res.statusCode = 404;
        res.end();
      }
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.address() as AddressInfo).port;
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));

  it('a set file repository: the state (manifest) and the RPM description name it without them', async () => {
    const url = `http://user:s3cret@127.0.0.1:${port}/debian`;
    const state = await fetchState({
      name: 'r',
      kind: 'deb',
      url,
      suite: 'bookworm',
      trusted: false,
      watchOnly: false,
    });
    expect(auth.at(-1)).toBe(`Basic ${Buffer.from('user:s3cret').toString('base64')}`); // sent to the server
    expect(state.source).toBe(`deb http://127.0.0.1:${port}/debian bookworm`);
    expect(state.index).toBe(`http://127.0.0.1:${port}/debian/dists/bookworm/InRelease`);
    const lines = upstreamLines({ upstream: [state] } as LayerManifest).join('\n');
    expect(lines).toContain(`http://127.0.0.1:${port}/debian/dists/bookworm/InRelease`);
    expect(lines).not.toContain('s3cret');
    // a repository that fails says which without them
    const bad = fetchState({
      name: 'r',
      kind: 'deb',
      url: `http://user:wrong@127.0.0.1:${port}/debian`,
      suite: 'bookworm',
      trusted: false,
      watchOnly: false,
    });
    await expect(bad).rejects.toThrow(/HTTP 401/);
    await expect(bad).rejects.not.toThrow(/wrong/);
  });

  it('a custom repository (--with-repo, --custom-repo): its source without them, its URL for the guest with them', async () => {
    const url = `http://user:s3cret@127.0.0.1:${port}/flat`;
    const [repo] = await stageCustomRepos([url], 'deb', tempTree({}));
    expect(repo?.packages.map((p) => p.name)).toEqual(['probe']);
    expect(repo?.source).toBe(`http://127.0.0.1:${port}/flat`);
    expect(repo?.url).toBe(url);
  });
});
