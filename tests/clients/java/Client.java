// The core flow through the generated Java client: a draft, published, read
// back once live; two refused calls and their error details; the post's events.
// Reads POSTS_ADDRESS, POSTS_API_KEY and POSTS_ACCOUNT_ID; prints what
// tests/clients/test_clients.py checks.
import com.example.posts.v1.CreatePostRequest;
import com.example.posts.v1.GetPostStatusRequest;
import com.example.posts.v1.Post;
import com.example.posts.v1.PostEventType;
import com.example.posts.v1.PostServiceGrpc;
import com.example.posts.v1.PostStatus;
import com.example.posts.v1.PostType;
import com.example.posts.v1.StatusChange;
import com.example.posts.v1.UpdatePostRequest;
import com.example.posts.v1.WatchPostEventsRequest;
import com.example.posts.v1.WatchPostEventsResponse;
import com.google.protobuf.Any;
import com.google.protobuf.InvalidProtocolBufferException;
import com.google.rpc.BadRequest;
import com.google.rpc.ErrorInfo;
import io.grpc.Context;
import io.grpc.ManagedChannel;
import io.grpc.ManagedChannelBuilder;
import io.grpc.Metadata;
import io.grpc.StatusRuntimeException;
import io.grpc.protobuf.StatusProto;
import io.grpc.stub.MetadataUtils;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.concurrent.TimeUnit;

public final class Client {
  private Client() {}

  /** A refused call's code, ErrorInfo reason and BadRequest fields. */
  static String refusal(Runnable call) throws InvalidProtocolBufferException {
    try {
      call.run();
    } catch (StatusRuntimeException refused) {
      com.google.rpc.Status status = StatusProto.fromThrowable(refused);
      String reason = "";
      List<String> fields = new ArrayList<>();
      for (Any detail : status.getDetailsList()) {
        if (detail.is(ErrorInfo.class)) {
          reason = detail.unpack(ErrorInfo.class).getReason();
        } else if (detail.is(BadRequest.class)) {
          for (BadRequest.FieldViolation violation :
              detail.unpack(BadRequest.class).getFieldViolationsList()) {
            fields.add(violation.getField());
          }
        }
      }
      return (refused.getStatus().getCode().value() + " " + reason + " " + String.join(",", fields))
          .trim();
    }
    throw new IllegalStateException("the call was not refused");
  }

  public static void main(String[] args) throws Exception {
    ManagedChannel channel =
        ManagedChannelBuilder.forTarget(System.getenv("POSTS_ADDRESS")).usePlaintext().build();
    Metadata headers = new Metadata();
    headers.put(
        Metadata.Key.of("authorization", Metadata.ASCII_STRING_MARSHALLER),
        "Bearer " + System.getenv("POSTS_API_KEY"));
    PostServiceGrpc.PostServiceBlockingStub stub =
        PostServiceGrpc.newBlockingStub(channel)
            .withInterceptors(MetadataUtils.newAttachHeadersInterceptor(headers))
            .withDeadlineAfter(60, TimeUnit.SECONDS);
    try {
      Post created =
          stub.createPost(
                  CreatePostRequest.newBuilder()
                      .setAccountId(System.getenv("POSTS_ACCOUNT_ID"))
                      .setPostType(PostType.POST_TYPE_TWEET)
                      .setText("Hello from the Java client")
                      .setStatus(StatusChange.STATUS_CHANGE_DRAFT)
                      .build())
              .getPost();
      String postId = created.getPostId();
      System.out.println("created: " + postId + " " + created.getStatusValue());

      Post published =
          stub.updatePost(
                  UpdatePostRequest.newBuilder()
                      .setPostId(postId)
                      .setStatus(StatusChange.STATUS_CHANGE_PUBLISH)
                      .build())
              .getPost();
      System.out.println("published: " + published.getStatusValue());

      while (true) {
        Post post =
            stub.getPostStatus(GetPostStatusRequest.newBuilder().setPostId(postId).build())
                .getPost();
        if (post.getStatus() == PostStatus.POST_STATUS_PUBLISHED) {
          System.out.println("live: " + post.getPlatformPostId());
          break;
        }
        Thread.sleep(100);
      }

      String edit =
          refusal(
              () ->
                  stub.updatePost(
                      UpdatePostRequest.newBuilder().setPostId(postId).setText("too late").build()));
      System.out.println("refused edit: " + edit);
      String create =
          refusal(
              () ->
                  stub.createPost(
                      CreatePostRequest.newBuilder()
                          .setPostType(PostType.POST_TYPE_TWEET)
                          .setText("no account")
                          .setStatus(StatusChange.STATUS_CHANGE_DRAFT)
                          .build()));
      System.out.println("refused create: " + create);

      List<String> types = new ArrayList<>();
      try (Context.CancellableContext watching = Context.current().withCancellation()) {
        watching.run(
            () -> {
              Iterator<WatchPostEventsResponse> answers =
                  stub.watchPostEvents(
                      WatchPostEventsRequest.newBuilder()
                          .addPostIds(postId)
                          .setAfterEventId(0)
                          .build());
              while (answers.hasNext()) {
                WatchPostEventsResponse answer = answers.next();
                types.add(String.valueOf(answer.getEvent().getTypeValue()));
                if (answer.getEvent().getType() == PostEventType.POST_EVENT_TYPE_PUBLISHED) {
                  break;
                }
              }
            });
      }
      System.out.println("watched: " + String.join(",", types));
    } finally {
      channel.shutdownNow().awaitTermination(10, TimeUnit.SECONDS);
    }
  }
}
