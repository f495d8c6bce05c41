// The core flow through the generated TypeScript client (Connect's gRPC
// transport): a draft, published, read back once live; two refused calls and
// their error details; the post's events. Reads POSTS_ADDRESS, POSTS_API_KEY and
// POSTS_ACCOUNT_ID; prints what tests/clients/test_clients.py checks.
import { ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { setTimeout as sleep } from "node:timers/promises";
import { BadRequestSchema, ErrorInfoSchema } from "../../../generated/typescript/google/rpc/error_details_pb";
import {
  PostEventType,
  PostService,
  PostStatus,
  PostType,
  StatusChange,
} from "../../../generated/typescript/posts/v1/posts_pb";

const env = (name: string): string => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};

const client = createClient(
  PostService,
  createGrpcTransport({ baseUrl: `http://${env("POSTS_ADDRESS")}` }),
);
const options = { headers: { authorization: `Bearer ${env("POSTS_API_KEY")}` }, timeoutMs: 60_000 };

// A refused call's code, ErrorInfo reason and BadRequest fields.
async function refusal(call: () => Promise<unknown>): Promise<string> {
  try {
    await call();
  } catch (error) {
    const refused = ConnectError.from(error);
    const reason = refused.findDetails(ErrorInfoSchema)[0]?.reason ?? "";
    const fields = refused
      .findDetails(BadRequestSchema)
      .flatMap((bad) => bad.fieldViolations.map((violation) => violation.field));
    return [refused.code, reason, fields.join(",")].join(" ").trim();
  }
  throw new Error("the call was not refused");
}

async function main(): Promise<void> {
  const created = await client.createPost(
    {
      accountId: env("POSTS_ACCOUNT_ID"),
      postType: PostType.TWEET,
      text: "Hello from the TypeScript client",
      status: StatusChange.DRAFT,
    },
    options,
  );
  const postId = created.post!.postId;
  console.log(`created: ${postId} ${created.post!.status}`);

  const published = await client.updatePost({ postId, status: StatusChange.PUBLISH }, options);
  console.log(`published: ${published.post!.status}`);

  for (;;) {
    const { post } = await client.getPostStatus({ postId }, options);
    if (post!.status === PostStatus.PUBLISHED) {
      console.log(`live: ${post!.platformPostId}`);
      break;
    }
    await sleep(100);
  }

  const edit = await refusal(() => client.updatePost({ postId, text: "too late" }, options));
  console.log(`refused edit: ${edit}`);
  const create = await refusal(() =>
    client.createPost({ postType: PostType.TWEET, text: "no account", status: StatusChange.DRAFT }, options),
  );
  console.log(`refused create: ${create}`);

  const watching = new AbortController();
  const types: number[] = [];
  for await (const answer of client.watchPostEvents(
    { postIds: [postId], afterEventId: 0n },
    { ...options, signal: watching.signal },
  )) {
    types.push(answer.event!.type);
    if (answer.event!.type === PostEventType.PUBLISHED) break;
  }
  watching.abort();
  console.log(`watched: ${types.join(",")}`);
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
