// A do-nothing module node for the launch-spec golden files.
export default async function noop() {}
