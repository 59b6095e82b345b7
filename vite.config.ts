import { defineConfig } from 'vite';
import { signallingPlugin } from './src/server/vite-plugin.ts';

export default defineConfig({
  // WebRTC signalling for the mesh at ws(s)://<dev server>/signal (MESH_ICE_SERVERS: JSON iceServers).
  // Every tab of the dev server (tests, the command-line tools' headless meshes) comes from 127.0.0.1,
  // so the per-address limits meant for strangers on a LAN are widened here; `npm start` keeps them.
  plugins: [signallingPlugin({ maxConnectionsPerAddress: 256, joinBurst: 500, joinsPerMinute: 6000, secretGuessBurst: 100, secretGuessesPerMinute: 600 })],
  // Tests set VITE_NO_WATCH: an edit under the tree while they run would otherwise reload their pages.
  server: { host: '127.0.0.1', port: 5173, watch: process.env.VITE_NO_WATCH ? null : undefined },
  build: { target: 'es2022', outDir: 'dist' },
  worker: { format: 'es' },
  // Pre-bundle every browser dependency up front: a dependency discovered mid-run makes Vite reload
  // the page, which kills a running test or generation.
  optimizeDeps: {
    entries: ['index.html', 'src/**/*.html', 'e2e/**/*.html'],
    include: ['@huggingface/tokenizers', 'idb-keyval', '@thaunknown/simple-peer/lite.js'],
  },
});
