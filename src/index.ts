/** Myelin's public API. Everything a user imports comes from here. */
export * from "./errors.js";
