ALTER TABLE "account" ADD COLUMN "refresh_token" TEXT NOT NULL DEFAULT '';
ALTER TABLE "account" ADD COLUMN "client_id" TEXT NOT NULL DEFAULT '';
ALTER TABLE "account" ADD COLUMN "client_secret" TEXT NOT NULL DEFAULT '';
ALTER TABLE "account" ADD COLUMN "token_expires_at" INTEGER;
ALTER TABLE "account" ADD COLUMN "credentials_version" INTEGER NOT NULL DEFAULT 0;
ALTER TABLE "account" ADD COLUMN "refreshing_until" INTEGER
