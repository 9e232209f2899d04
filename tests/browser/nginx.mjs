// nginx.mjs — Debian's nginx as the proxy in front of `switchboard serve` in
// the transport browser tests (transport_browser_test.mjs): its own prefix,
// config and logs in a temporary directory, a port chosen at run time,
// killed on every way out (harness.mjs's onExit). Never the system service.
//
// Two proxies that real deployments have:
//  - 'drop-upgrade': a plain HTTP proxy that does not pass `Upgrade` (nginx
//    forwards hop-by-hop headers only when told to): no WebSocket gets
//    through; streaming responses do (it honours `X-Accel-Buffering: no`);
//  - 'buffering': the same, and it buffers responses whatever the upstream
//    says (`proxy_buffering on`, `proxy_ignore_headers X-Accel-Buffering`)
//    and compresses event streams (gzip): a stream shows nothing, not even
//    its headers, until kilobytes have piled up; whole responses (long-polls)
//    pass. (Without gzip nginx hands small reads on at once even when
//    buffering: measured, see nginxConfig.)
import { spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { onExit, withDeadline } from './harness.mjs';

export const nginxPath = process.env.SWITCHBOARD_NGINX ?? '/usr/sbin/nginx';

// A port free on 127.0.0.1 right now (the kernel's choice).
export function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

export function nginxConfig({ dir, port, upstreamPort, mode }) {
  const proxying = [
    `proxy_pass http://127.0.0.1:${upstreamPort};`,
    'proxy_http_version 1.1;',
    // The browser's host:port: the server's same-origin check compares it with Origin.
    'proxy_set_header Host $http_host;',
    // No `proxy_set_header Upgrade/Connection`: the upgrade does not pass.
    'proxy_read_timeout 60s;',
  ];
  if (mode === 'buffering') {
    proxying.push('proxy_buffering on;', 'proxy_ignore_headers X-Accel-Buffering;',
      // In memory only: the temp directory belongs to root, workers run as nobody.
      'proxy_max_temp_file_size 0;',
      // nginx's proxy buffering alone still hands on what it has read while the
      // client can take it (measured: a small event passes at once); compression
      // holds it until its buffer fills, as a compressing proxy or CDN does.
      'gzip on;', 'gzip_types text/event-stream;', 'gzip_min_length 0;', 'gzip_proxied any;');
  } else if (mode !== 'drop-upgrade') {
    throw new Error(`nginxConfig: unknown mode ${mode}`);
  }
  return [
    'worker_processes 1;',
    `pid ${path.join(dir, 'nginx.pid')};`,
    `error_log ${path.join(dir, 'error.log')} warn;`,
    'events { worker_connections 512; }',
    'http {',
    `  access_log ${path.join(dir, 'access.log')};`,
    `  client_body_temp_path ${path.join(dir, 'tmp/body')};`,
    `  proxy_temp_path ${path.join(dir, 'tmp/proxy')};`,
    `  fastcgi_temp_path ${path.join(dir, 'tmp/fastcgi')};`,
    `  uwsgi_temp_path ${path.join(dir, 'tmp/uwsgi')};`,
    `  scgi_temp_path ${path.join(dir, 'tmp/scgi')};`,
    '  client_body_buffer_size 128k;',
    '  server {',
    `    listen 127.0.0.1:${port};`,
    '    location / {',
    ...proxying.map((line) => `      ${line}`),
    '    }',
    '  }',
    '}',
    '',
  ].join('\n');
}

// Waits until something accepts TCP connections on 127.0.0.1:port.
async function listening(port, ms) {
  const deadline = Date.now() + ms;
  for (;;) {
    const ok = await new Promise((resolve) => {
      const socket = net.connect(port, '127.0.0.1');
      socket.on('connect', () => { socket.destroy(); resolve(true); });
      socket.on('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`nothing listens on 127.0.0.1:${port} after ${ms / 1000} s`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

// Starts nginx in `dir` (made if missing) in front of 127.0.0.1:upstreamPort.
// Returns {url, port, stop(), output(), accessLog()}: output() is the error log's tail.
export async function startNginx(dir, { upstreamPort, mode }) {
  if (!existsSync(nginxPath)) throw new Error(`${nginxPath} is missing (Debian package nginx: scripts/setup.sh)`);
  mkdirSync(path.join(dir, 'tmp'), { recursive: true });
  chmodSync(dir, 0o755);
  const port = await freePort();
  const config = path.join(dir, 'nginx.conf');
  writeFileSync(config, nginxConfig({ dir, port, upstreamPort, mode }));
  let output = '';
  const child = spawn(nginxPath, ['-p', dir, '-e', path.join(dir, 'error.log'), '-c', config, '-g', 'daemon off;'],
    // Its own process group: a kill reaches the workers too.
    { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  const keep = (d) => { output = (output + d).slice(-4000); };
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  const kill = (signal) => {
    try { process.kill(-child.pid, signal); } catch { /* gone */ }
  };
  const forget = onExit(() => kill('SIGKILL'));
  const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  exited.then(forget);
  const failed = exited.then(({ code, signal }) => {
    throw new Error(`nginx exited (${code ?? signal}) at start: ${output.trim()}`);
  });
  await Promise.race([listening(port, 10_000), failed]);
  failed.catch(() => {}); // a later exit is reported by stop()
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    output: () => output,
    // The access log's lines (a request is logged when it ends).
    accessLog: () => (existsSync(path.join(dir, 'access.log'))
      ? readFileSync(path.join(dir, 'access.log'), 'utf8').split('\n').filter(Boolean) : []),
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      kill('SIGTERM'); // fast shutdown; SIGKILL if it dawdles
      try {
        await withDeadline(exited, 5000, 'nginx exit');
      } catch {
        kill('SIGKILL');
      }
    },
  };
}
