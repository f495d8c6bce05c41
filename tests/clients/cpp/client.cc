// The core flow through the generated C++ client: a draft, published, read
// back once live; two refused calls and their error details; the post's events.
// Reads POSTS_ADDRESS, POSTS_API_KEY and POSTS_ACCOUNT_ID; prints what
// tests/clients/test_clients.py checks.
#include <chrono>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"
#include "posts/v1/posts.grpc.pb.h"

namespace {

using posts::v1::PostService;

std::string env(const char* name) {
  const char* value = std::getenv(name);
  if (value == nullptr || *value == '\0') {
    std::cerr << name << " is not set\n";
    std::exit(1);
  }
  return value;
}

// Each call has its own context: the key as metadata, and a deadline.
std::unique_ptr<grpc::ClientContext> context() {
  auto ctx = std::make_unique<grpc::ClientContext>();
  ctx->AddMetadata("authorization", "Bearer " + env("POSTS_API_KEY"));
  ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
  return ctx;
}

void check(const grpc::Status& status, const char* what) {
  if (!status.ok()) {
    std::cerr << what << ": " << status.error_code() << " " << status.error_message() << "\n";
    std::exit(1);
  }
}

// A refused call's code, ErrorInfo reason and BadRequest fields.
std::string refusal(const grpc::Status& status) {
  if (status.ok()) {
    std::cerr << "the call was not refused\n";
    std::exit(1);
  }
  google::rpc::Status details;
  details.ParseFromString(status.error_details());
  std::string reason, fields;
  for (const auto& detail : details.details()) {
    google::rpc::ErrorInfo info;
    google::rpc::BadRequest bad;
    if (detail.UnpackTo(&info)) {
      reason = info.reason();
    } else if (detail.UnpackTo(&bad)) {
      for (const auto& violation : bad.field_violations()) {
        fields += (fields.empty() ? "" : ",") + violation.field();
      }
    }
  }
  std::string line = std::to_string(status.error_code()) + " " + reason;
  return fields.empty() ? line : line + " " + fields;
}

}  // namespace

int main() {
  auto stub = PostService::NewStub(
      grpc::CreateChannel(env("POSTS_ADDRESS"), grpc::InsecureChannelCredentials()));

  posts::v1::CreatePostRequest create;
  create.set_account_id(env("POSTS_ACCOUNT_ID"));
  create.set_post_type(posts::v1::POST_TYPE_TWEET);
  create.set_text("Hello from the C++ client");
  create.set_status(posts::v1::STATUS_CHANGE_DRAFT);
  posts::v1::CreatePostResponse created;
  check(stub->CreatePost(context().get(), create, &created), "CreatePost");
  const std::string post_id = created.post().post_id();
  std::cout << "created: " << post_id << " " << created.post().status() << "\n";

  posts::v1::UpdatePostRequest publish;
  publish.set_post_id(post_id);
  publish.set_status(posts::v1::STATUS_CHANGE_PUBLISH);
  posts::v1::UpdatePostResponse published;
  check(stub->UpdatePost(context().get(), publish, &published), "UpdatePost");
  std::cout << "published: " << published.post().status() << "\n";

  posts::v1::GetPostStatusRequest get;
  get.set_post_id(post_id);
  for (;;) {
    posts::v1::GetPostStatusResponse got;
    check(stub->GetPostStatus(context().get(), get, &got), "GetPostStatus");
    if (got.post().status() == posts::v1::POST_STATUS_PUBLISHED) {
      std::cout << "live: " << got.post().platform_post_id() << "\n";
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }

  posts::v1::UpdatePostRequest edit;
  edit.set_post_id(post_id);
  edit.set_text("too late");
  posts::v1::UpdatePostResponse edited;
  std::cout << "refused edit: " << refusal(stub->UpdatePost(context().get(), edit, &edited))
            << "\n";
  posts::v1::CreatePostRequest no_account;
  no_account.set_post_type(posts::v1::POST_TYPE_TWEET);
  no_account.set_text("no account");
  no_account.set_status(posts::v1::STATUS_CHANGE_DRAFT);
  posts::v1::CreatePostResponse not_created;
  std::cout << "refused create: "
            << refusal(stub->CreatePost(context().get(), no_account, &not_created)) << "\n";

  posts::v1::WatchPostEventsRequest watch;
  watch.add_post_ids(post_id);
  watch.set_after_event_id(0);
  auto watching = context();
  auto reader = stub->WatchPostEvents(watching.get(), watch);
  posts::v1::WatchPostEventsResponse answer;
  std::string types;
  while (reader->Read(&answer)) {
    types += (types.empty() ? "" : ",") + std::to_string(answer.event().type());
    if (answer.event().type() == posts::v1::POST_EVENT_TYPE_PUBLISHED) break;
  }
  watching->TryCancel();
  reader->Finish();
  std::cout << "watched: " << types << "\n";
  return 0;
}
