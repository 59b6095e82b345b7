import { defineConfig } from 'vite';
import { signallingPlugin } from './src/server/vite-plugin.ts';

export default defineConfig({
  // WebRTC signalling for the mesh at ws(s)://<dev server>/signal (MESH_ICE_SERVERS: JSON iceServers).
  // Every tab of the dev server (tests, the command-line tools' headless meshes) comes from 127.0.0.1,
  // so the per-address limits meant for strangers on a LAN are widened here; `npm start` keeps them.
  plugins: [signallingPlugin({ maxConnectionsPerAddress: 256, joinBurst: 500, joinsPerMinute: 6000, secretGuessBurst: 100, secretGuessesPerMinute: 600 })],
  // Tests set VITE_NO_WATCH: an edit under the tree while they run would otherwise reload their pages.
  server: {
    host: '127.0.0.1',
    port: 5173,
    watch: process.env.VITE_NO_WATCH ? null : undefined,
    // Cross-origin isolation (SharedArrayBuffer): WebAssembly threads for the CPU peers of
    // `npm run bench:peers` (onnxruntime-web, wllama) and CPU backends. Workers need it on their
    // script responses too, so every response carries it.
    headers: { 'Cross-Origin-Opener-Policy': 'same-origin', 'Cross-Origin-Embedder-Policy': 'require-corp' },
  },
  // The headless API leader of `npm start -- --leader headless` is built too: it runs from dist/.
  build: { target: 'es2022', outDir: 'dist', rolldownOptions: { input: ['index.html', 'src/headless/api-leader.html'] } },
  worker: { format: 'es' },
  // Pre-bundle every browser dependency up front: a dependency discovered mid-run makes Vite reload
  // the page, which kills a running test or generation.
  optimizeDeps: {
    entries: ['index.html', 'src/**/*.html', 'e2e/**/*.html'],
    include: ['@huggingface/tokenizers', 'idb-keyval', '@thaunknown/simple-peer/lite.js'],
    // Served as published: they find their .wasm files next to their own module URL.
    exclude: ['onnxruntime-web', '@wllama/wllama'],
  },
});
