// The part of @thaunknown/simple-peer (lite build, no media) the mesh uses. The package ships no types.
declare module '@thaunknown/simple-peer/lite.js' {
  export interface SimplePeerOptions {
    initiator?: boolean;
    trickle?: boolean;
    config?: { iceServers?: { urls: string | string[]; username?: string; credential?: string }[] };
    channelConfig?: { ordered?: boolean; maxRetransmits?: number };
    channelName?: string;
    objectMode?: boolean;
  }
  export default class SimplePeer {
    constructor(opts?: SimplePeerOptions);
    readonly connected: boolean;
    readonly destroyed: boolean;
    readonly bufferSize: number;
    signal(data: Record<string, unknown>): void;
    send(chunk: Uint8Array | ArrayBuffer | string): void;
    destroy(err?: Error): void;
    on(event: 'signal', fn: (data: Record<string, unknown>) => void): this;
    on(event: 'connect' | 'close', fn: () => void): this;
    on(event: 'data', fn: (data: Uint8Array) => void): this;
    on(event: 'error', fn: (err: Error & { code?: string }) => void): this;
    removeAllListeners(event?: string): this;
    /** Private in simple-peer, but stable since 9.x: the RTCDataChannel once connected. */
    _channel: RTCDataChannel | null;
  }
}
