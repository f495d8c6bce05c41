CREATE TABLE "post_event_v3" ("id" INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT, "seq" INTEGER, "workspace_id" VARCHAR(30) NOT NULL DEFAULT '', "post_id" VARCHAR(30) NOT NULL, "at" INTEGER NOT NULL, "type" SMALLINT NOT NULL DEFAULT 0, "from_status" VARCHAR(16) NOT NULL, "to_status" VARCHAR(16) NOT NULL, "cause" TEXT NOT NULL, "origin" VARCHAR(16) NOT NULL DEFAULT '', "attempt" INTEGER NOT NULL DEFAULT 0, "item_index" INTEGER, "error_code" TEXT NOT NULL DEFAULT '', "error_message" TEXT NOT NULL DEFAULT '', "job_token" VARCHAR(32) NOT NULL, "snapshot" BLOB, FOREIGN KEY ("post_id") REFERENCES "post" ("id") ON DELETE CASCADE);
INSERT INTO "post_event_v3" ("id", "workspace_id", "post_id", "at", "from_status", "to_status", "cause", "job_token") SELECT "e"."id", "p"."workspace_id", "e"."post_id", "e"."at", "e"."from_status", "e"."to_status", "e"."cause", "e"."job_token" FROM "post_event" AS "e" JOIN "post" AS "p" ON "p"."id" = "e"."post_id";
DROP TABLE "post_event";
ALTER TABLE "post_event_v3" RENAME TO "post_event";
CREATE INDEX "post_event_post_id_id" ON "post_event" ("post_id", "id");
CREATE INDEX "post_event_workspace_id_id" ON "post_event" ("workspace_id", "id");
CREATE TABLE "event_log" ("id" INTEGER NOT NULL PRIMARY KEY, "last_seq" INTEGER NOT NULL DEFAULT 0, "pruned_through" INTEGER NOT NULL DEFAULT 0);
INSERT INTO "event_log" ("id", "last_seq", "pruned_through") VALUES (1, 0, 0)
