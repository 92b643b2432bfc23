/**
 * Where the endpoint's basic-auth credentials come from: a file each (the Helm chart mounts them from a Secret;
 * read on every delivery, so a rotated Secret takes effect without a restart) or an environment variable each.
 * The configuration names the places, never the values.
 */
import { readFile } from "node:fs/promises";
import type { BasicCredentials } from "./auth.ts";
import type { CredentialSource } from "./server.ts";

/** A file, or an environment variable. */
export type SecretLocation = { readonly file: string } | { readonly env: string };

export interface CredentialLocations {
  readonly username: SecretLocation;
  readonly password: SecretLocation;
}

/** One trailing line break is dropped (files written by `echo`); nothing else is trimmed. */
export function secretText(raw: string): string {
  return raw.replace(/\r?\n$/, "");
}

export function describeLocation(location: SecretLocation): string {
  return "file" in location ? `file ${location.file}` : `environment variable ${location.env}`;
}

export function credentialSource(
  locations: CredentialLocations,
  io: { env: NodeJS.ProcessEnv; readFile?: (path: string) => Promise<string> } = { env: process.env },
): CredentialSource {
  const read = io.readFile ?? ((path: string) => readFile(path, "utf8"));
  const value = async (what: string, location: SecretLocation): Promise<string> => {
    const text = "file" in location ? secretText(await read(location.file)) : (io.env[location.env] ?? "");
    if (text === "") throw new Error(`the service hook ${what} (${describeLocation(location)}) is empty`);
    return text;
  };
  return async (): Promise<BasicCredentials> => ({
    username: await value("user name", locations.username),
    password: await value("password", locations.password),
  });
}
