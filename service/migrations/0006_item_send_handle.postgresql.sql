ALTER TABLE "post_item" ADD COLUMN "send_handle" TEXT NOT NULL DEFAULT ''
