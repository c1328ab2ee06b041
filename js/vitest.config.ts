import { defineConfig } from "vitest/config";

// Run with `vitest run --root js`. DOM tests opt into jsdom with a `@vitest-environment jsdom` comment.
export default defineConfig({
  test: {
    include: ["tests/**/*.test.ts"],
    environment: "node",
  },
});
