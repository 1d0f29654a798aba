/** The `myelin` command line. */
export async function main(argv: string[]): Promise<number> {
  console.log(`myelin ${argv.join(" ")}`);
  return 0;
}
