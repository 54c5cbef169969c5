// `npm run lint`: eslint's recommended rules over the browser client and the JS tests. The script runs eslint
// from the repository root with --config, so the patterns below are relative to the root.
import js from "@eslint/js";
import globals from "globals";

export default [
  js.configs.recommended,
  {
    // The client: a classic script (channelbus.js) and its ES module wrapper, both run in browsers and in node.
    files: ["channelbus/static/channelbus/*.js"],
    languageOptions: { ecmaVersion: 2022, sourceType: "script", globals: { ...globals.browser } },
  },
  {
    files: ["channelbus/static/channelbus/*.mjs"],
    languageOptions: { ecmaVersion: 2022, sourceType: "module", globals: { ...globals.browser } },
  },
  {
    // Node's test runner; the browser tests also hand functions to page.evaluate(), which run in the page.
    files: ["tests/js/**/*.mjs", "tests/browser/**/*.mjs"],
    languageOptions: { ecmaVersion: "latest", sourceType: "module", globals: { ...globals.node, ...globals.browser } },
  },
];
