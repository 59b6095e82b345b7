// Errors a caller can act on. Every layer throws these (or a subclass), so a page, the command line
// or a library user can tell "this browser has no WebGPU" from "the model file is corrupt" from "a
// stage sent garbage" by `code`, and show `message`, which is written for the person at the screen.

/** What went wrong, in a word a program can switch on. */
export type ErrorCode =
  | 'no-webgpu'
  | 'device-lost'
  | 'shader-compile'
  | 'gpu-limits'
  | 'model-format'
  /** A model file could not be read at all (not found, HTTP error, offline, no CORS): ModelSourceError. */
  | 'model-source'
  | 'protocol'
  | 'room'
  | 'stage-lost'
  | 'bad-request';

/** Base class of the project's errors: a stable `code` and a message a user understands. */
export class SpecpipeError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** This browser or runtime offers no WebGPU adapter (or refused a device). */
export class NoWebGPUError extends SpecpipeError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('no-webgpu', message, options);
  }
}

/** The GPU device went away (driver reset, tab backgrounded too long, destroyed): reload to go on. */
export class DeviceLostError extends SpecpipeError {
  constructor(
    /** GPUDeviceLostReason: 'destroyed' or 'unknown'. */
    readonly reason: string,
    message: string,
  ) {
    super('device-lost', message);
  }
}

/** A WGSL kernel failed to compile or to build its pipeline; `message` carries the compiler's lines. */
export class ShaderCompileError extends SpecpipeError {
  constructor(
    /** Which kernel (the shader file or pipeline label). */
    readonly kernel: string,
    message: string,
  ) {
    super('shader-compile', message);
  }
}

/** The model does not fit what this adapter allows (buffer size, workgroup memory, bindings). */
export class GpuLimitsError extends SpecpipeError {
  constructor(message: string) {
    super('gpu-limits', message);
  }
}

/** A model file or config is malformed, truncated, or uses something this runtime cannot load. */
export class ModelFormatError extends SpecpipeError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('model-format', message, options);
  }
}

/** A caller passed something invalid (empty prompt, bad option): nothing was started. */
export class BadRequestError extends SpecpipeError {
  constructor(message: string) {
    super('bad-request', message);
  }
}

/** Turns anything thrown into a message for a person (an Error's message, else its string). */
export function errorMessage(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
