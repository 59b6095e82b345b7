// src/index.ts is the library's door: everything it exports is documented (TSDoc) and resolves.
import { describe, expect, it } from 'vitest';
import ts from 'typescript';
import { resolve } from 'node:path';

const entry = resolve(import.meta.dirname, '../src/index.ts');

describe('public API (src/index.ts)', () => {
  const program = ts.createProgram([entry], { allowImportingTsExtensions: true, noEmit: true, strict: true, target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.ESNext, moduleResolution: ts.ModuleResolutionKind.Bundler, types: [] });
  const checker = program.getTypeChecker();
  const moduleSymbol = checker.getSymbolAtLocation(program.getSourceFile(entry)!)!;
  const exports = checker.getExportsOfModule(moduleSymbol);

  it('exports the engine factory, its types and the typed errors', () => {
    const names = exports.map((s) => s.name);
    for (const n of ['createEngine', 'Engine', 'GenerationRequest', 'TokenEvent', 'TabEngine', 'MeshEngine', 'startStageNode', 'SpecpipeError', 'NoWebGPUError', 'DeviceLostError', 'ShaderCompileError', 'ModelFormatError', 'ProtocolError', 'SignallingError']) {
      expect(names).toContain(n);
    }
  });

  it('documents every exported symbol', () => {
    const undocumented = exports
      .map((s) => (s.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(s) : s))
      .filter((s) => s.getDocumentationComment(checker).length === 0 && !(s.declarations ?? []).some((d) => ts.getJSDocCommentsAndTags(d).length > 0))
      .map((s) => s.name);
    expect(undocumented).toEqual([]);
  });
});
