// Type declarations of channelbus.mjs (TypeScript looks for .d.mts beside a .mjs): the same as channelbus.d.ts.
export * from "./channelbus.js";
export { default } from "./channelbus.js";
