// Hosts the signalling service on Vite's dev and preview servers at /signal. Only upgrades to that
// path are taken; Vite's own HMR websocket (protocol 'vite-hmr') and other paths are left to Vite.
// The limits and the Origin check are those of `npm start` (SIGNALLING_LIMITS); MESH_ALLOWED_ORIGINS
// (comma list) adds page origins besides the dev server's own.

import type { EventEmitter } from 'node:events';
import type { Plugin } from 'vite';
import { createSignallingServer, type SignallingOptions, type SignallingServer } from './signalling.ts';
import { SIGNAL_PATH, type IceServerConfig } from './signal-protocol.ts';

/** ICE servers from the MESH_ICE_SERVERS environment variable (JSON array), or []. */
export function iceServersFromEnv(env: NodeJS.ProcessEnv = process.env): IceServerConfig[] {
  const raw = env.MESH_ICE_SERVERS;
  if (!raw) return [];
  const v: unknown = JSON.parse(raw);
  if (!Array.isArray(v)) throw new Error('MESH_ICE_SERVERS must be a JSON array of {urls, username?, credential?}');
  return v as IceServerConfig[];
}

/** Page origins from the MESH_ALLOWED_ORIGINS environment variable (comma list), or []. */
export function allowedOriginsFromEnv(env: NodeJS.ProcessEnv = process.env): string[] {
  return (env.MESH_ALLOWED_ORIGINS ?? '').split(',').map((o) => o.trim()).filter(Boolean);
}

export function signallingPlugin(opts: SignallingOptions & { path?: string } = {}): Plugin {
  const path = opts.path ?? SIGNAL_PATH;
  const servers: SignallingServer[] = [];
  const host = (httpServer: EventEmitter | null): void => {
    if (!httpServer) return; // middleware mode: the embedding server must call attach() itself
    const s = createSignallingServer({
      iceServers: opts.iceServers ?? iceServersFromEnv(),
      allowedOrigins: opts.allowedOrigins ?? allowedOriginsFromEnv(),
      log: process.env.DEBUG_SIGNAL ? (l) => console.log(l) : undefined,
      ...opts,
    });
    s.attach(httpServer, path);
    httpServer.on('close', () => void s.close());
    servers.push(s);
  };
  return {
    name: 'specpipe-signalling',
    configureServer(server) {
      host(server.httpServer);
    },
    configurePreviewServer(server) {
      host(server.httpServer);
    },
  };
}
