// Type declarations of channelbus.mjs (TypeScript looks for .d.mts beside a .mjs): the same as channelbus.d.ts.
export * from "./channelbus.js";
// The default export is the channelbus object, declared here rather than re-exported: under "moduleResolution":
// "node16"/"nodenext" channelbus.d.ts counts as CommonJS (no package.json says otherwise), and a re-exported
// default would then be its whole module instead.
declare const channelbus: typeof globalThis.channelbus;
export default channelbus;
