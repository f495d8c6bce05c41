package com.example.posts.v1;

import static io.grpc.MethodDescriptor.generateFullMethodName;

/**
 * <pre>
 * PostService owns the lifecycle of posts: create, edit, schedule, publish,
 * cancel and track delivery.
 * </pre>
 */
@javax.annotation.Generated(
    value = "by gRPC proto compiler",
    comments = "Source: posts/v1/posts.proto")
@io.grpc.stub.annotations.GrpcGenerated
public final class PostServiceGrpc {

  private PostServiceGrpc() {}

  public static final String SERVICE_NAME = "posts.v1.PostService";

  // Static method descriptors that strictly reflect the proto.
  private static volatile io.grpc.MethodDescriptor<com.example.posts.v1.CreatePostRequest,
      com.example.posts.v1.CreatePostResponse> getCreatePostMethod;

  @io.grpc.stub.annotations.RpcMethod(
      fullMethodName = SERVICE_NAME + '/' + "CreatePost",
      requestType = com.example.posts.v1.CreatePostRequest.class,
      responseType = com.example.posts.v1.CreatePostResponse.class,
      methodType = io.grpc.MethodDescriptor.MethodType.UNARY)
  public static io.grpc.MethodDescriptor<com.example.posts.v1.CreatePostRequest,
      com.example.posts.v1.CreatePostResponse> getCreatePostMethod() {
    io.grpc.MethodDescriptor<com.example.posts.v1.CreatePostRequest, com.example.posts.v1.CreatePostResponse> getCreatePostMethod;
    if ((getCreatePostMethod = PostServiceGrpc.getCreatePostMethod) == null) {
      synchronized (PostServiceGrpc.class) {
        if ((getCreatePostMethod = PostServiceGrpc.getCreatePostMethod) == null) {
          PostServiceGrpc.getCreatePostMethod = getCreatePostMethod =
              io.grpc.MethodDescriptor.<com.example.posts.v1.CreatePostRequest, com.example.posts.v1.CreatePostResponse>newBuilder()
              .setType(io.grpc.MethodDescriptor.MethodType.UNARY)
              .setFullMethodName(generateFullMethodName(SERVICE_NAME, "CreatePost"))
              .setSampledToLocalTracing(true)
              .setRequestMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  com.example.posts.v1.CreatePostRequest.getDefaultInstance()))
              .setResponseMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  com.example.posts.v1.CreatePostResponse.getDefaultInstance()))
              .setSchemaDescriptor(new PostServiceMethodDescriptorSupplier("CreatePost"))
              .build();
        }
      }
    }
    return getCreatePostMethod;
  }

  private static volatile io.grpc.MethodDescriptor<com.example.posts.v1.GetPostStatusRequest,
      com.example.posts.v1.GetPostStatusResponse> getGetPostStatusMethod;

  @io.grpc.stub.annotations.RpcMethod(
      fullMethodName = SERVICE_NAME + '/' + "GetPostStatus",
      requestType = com.example.posts.v1.GetPostStatusRequest.class,
      responseType = com.example.posts.v1.GetPostStatusResponse.class,
      methodType = io.grpc.MethodDescriptor.MethodType.UNARY)
  public static io.grpc.MethodDescriptor<com.example.posts.v1.GetPostStatusRequest,
      com.example.posts.v1.GetPostStatusResponse> getGetPostStatusMethod() {
    io.grpc.MethodDescriptor<com.example.posts.v1.GetPostStatusRequest, com.example.posts.v1.GetPostStatusResponse> getGetPostStatusMethod;
    if ((getGetPostStatusMethod = PostServiceGrpc.getGetPostStatusMethod) == null) {
      synchronized (PostServiceGrpc.class) {
        if ((getGetPostStatusMethod = PostServiceGrpc.getGetPostStatusMethod) == null) {
          PostServiceGrpc.getGetPostStatusMethod = getGetPostStatusMethod =
              io.grpc.MethodDescriptor.<com.example.posts.v1.GetPostStatusRequest, com.example.posts.v1.GetPostStatusResponse>newBuilder()
              .setType(io.grpc.MethodDescriptor.MethodType.UNARY)
              .setFullMethodName(generateFullMethodName(SERVICE_NAME, "GetPostStatus"))
              .setSampledToLocalTracing(true)
              .setRequestMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  com.example.posts.v1.GetPostStatusRequest.getDefaultInstance()))
              .setResponseMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  com.example.posts.v1.GetPostStatusResponse.getDefaultInstance()))
              .setSchemaDescriptor(new PostServiceMethodDescriptorSupplier("GetPostStatus"))
              .build();
        }
      }
    }
    return getGetPostStatusMethod;
  }

  private static volatile io.grpc.MethodDescriptor<com.example.posts.v1.UpdatePostRequest,
      com.example.posts.v1.UpdatePostResponse> getUpdatePostMethod;

  @io.grpc.stub.annotations.RpcMethod(
      fullMethodName = SERVICE_NAME + '/' + "UpdatePost",
      requestType = com.example.posts.v1.UpdatePostRequest.class,
      responseType = com.example.posts.v1.UpdatePostResponse.class,
      methodType = io.grpc.MethodDescriptor.MethodType.UNARY)
  public static io.grpc.MethodDescriptor<com.example.posts.v1.UpdatePostRequest,
      com.example.posts.v1.UpdatePostResponse> getUpdatePostMethod() {
    io.grpc.MethodDescriptor<com.example.posts.v1.UpdatePostRequest, com.example.posts.v1.UpdatePostResponse> getUpdatePostMethod;
    if ((getUpdatePostMethod = PostServiceGrpc.getUpdatePostMethod) == null) {
      synchronized (PostServiceGrpc.class) {
        if ((getUpdatePostMethod = PostServiceGrpc.getUpdatePostMethod) == null) {
          PostServiceGrpc.getUpdatePostMethod = getUpdatePostMethod =
              io.grpc.MethodDescriptor.<com.example.posts.v1.UpdatePostRequest, com.example.posts.v1.UpdatePostResponse>newBuilder()
              .setType(io.grpc.MethodDescriptor.MethodType.UNARY)
              .setFullMethodName(generateFullMethodName(SERVICE_NAME, "UpdatePost"))
              .setSampledToLocalTracing(true)
              .setRequestMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  com.example.posts.v1.UpdatePostRequest.getDefaultInstance()))
              .setResponseMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  com.example.posts.v1.UpdatePostResponse.getDefaultInstance()))
              .setSchemaDescriptor(new PostServiceMethodDescriptorSupplier("UpdatePost"))
              .build();
        }
      }
    }
    return getUpdatePostMethod;
  }

  private static volatile io.grpc.MethodDescriptor<com.example.posts.v1.DeletePostRequest,
      com.example.posts.v1.DeletePostResponse> getDeletePostMethod;

  @io.grpc.stub.annotations.RpcMethod(
      fullMethodName = SERVICE_NAME + '/' + "DeletePost",
      requestType = com.example.posts.v1.DeletePostRequest.class,
      responseType = com.example.posts.v1.DeletePostResponse.class,
      methodType = io.grpc.MethodDescriptor.MethodType.UNARY)
  public static io.grpc.MethodDescriptor<com.example.posts.v1.DeletePostRequest,
      com.example.posts.v1.DeletePostResponse> getDeletePostMethod() {
    io.grpc.MethodDescriptor<com.example.posts.v1.DeletePostRequest, com.example.posts.v1.DeletePostResponse> getDeletePostMethod;
    if ((getDeletePostMethod = PostServiceGrpc.getDeletePostMethod) == null) {
      synchronized (PostServiceGrpc.class) {
        if ((getDeletePostMethod = PostServiceGrpc.getDeletePostMethod) == null) {
          PostServiceGrpc.getDeletePostMethod = getDeletePostMethod =
              io.grpc.MethodDescriptor.<com.example.posts.v1.DeletePostRequest, com.example.posts.v1.DeletePostResponse>newBuilder()
              .setType(io.grpc.MethodDescriptor.MethodType.UNARY)
              .setFullMethodName(generateFullMethodName(SERVICE_NAME, "DeletePost"))
              .setSampledToLocalTracing(true)
              .setRequestMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  com.example.posts.v1.DeletePostRequest.getDefaultInstance()))
              .setResponseMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  com.example.posts.v1.DeletePostResponse.getDefaultInstance()))
              .setSchemaDescriptor(new PostServiceMethodDescriptorSupplier("DeletePost"))
              .build();
        }
      }
    }
    return getDeletePostMethod;
  }

  private static volatile io.grpc.MethodDescriptor<com.example.posts.v1.ListPostsRequest,
      com.example.posts.v1.ListPostsResponse> getListPostsMethod;

  @io.grpc.stub.annotations.RpcMethod(
      fullMethodName = SERVICE_NAME + '/' + "ListPosts",
      requestType = com.example.posts.v1.ListPostsRequest.class,
      responseType = com.example.posts.v1.ListPostsResponse.class,
      methodType = io.grpc.MethodDescriptor.MethodType.UNARY)
  public static io.grpc.MethodDescriptor<com.example.posts.v1.ListPostsRequest,
      com.example.posts.v1.ListPostsResponse> getListPostsMethod() {
    io.grpc.MethodDescriptor<com.example.posts.v1.ListPostsRequest, com.example.posts.v1.ListPostsResponse> getListPostsMethod;
    if ((getListPostsMethod = PostServiceGrpc.getListPostsMethod) == null) {
      synchronized (PostServiceGrpc.class) {
        if ((getListPostsMethod = PostServiceGrpc.getListPostsMethod) == null) {
          PostServiceGrpc.getListPostsMethod = getListPostsMethod =
              io.grpc.MethodDescriptor.<com.example.posts.v1.ListPostsRequest, com.example.posts.v1.ListPostsResponse>newBuilder()
              .setType(io.grpc.MethodDescriptor.MethodType.UNARY)
              .setFullMethodName(generateFullMethodName(SERVICE_NAME, "ListPosts"))
              .setSampledToLocalTracing(true)
              .setRequestMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  com.example.posts.v1.ListPostsRequest.getDefaultInstance()))
              .setResponseMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  com.example.posts.v1.ListPostsResponse.getDefaultInstance()))
              .setSchemaDescriptor(new PostServiceMethodDescriptorSupplier("ListPosts"))
              .build();
        }
      }
    }
    return getListPostsMethod;
  }

  private static volatile io.grpc.MethodDescriptor<com.example.posts.v1.ListPostEventsRequest,
      com.example.posts.v1.ListPostEventsResponse> getListPostEventsMethod;

  @io.grpc.stub.annotations.RpcMethod(
      fullMethodName = SERVICE_NAME + '/' + "ListPostEvents",
      requestType = com.example.posts.v1.ListPostEventsRequest.class,
      responseType = com.example.posts.v1.ListPostEventsResponse.class,
      methodType = io.grpc.MethodDescriptor.MethodType.UNARY)
  public static io.grpc.MethodDescriptor<com.example.posts.v1.ListPostEventsRequest,
      com.example.posts.v1.ListPostEventsResponse> getListPostEventsMethod() {
    io.grpc.MethodDescriptor<com.example.posts.v1.ListPostEventsRequest, com.example.posts.v1.ListPostEventsResponse> getListPostEventsMethod;
    if ((getListPostEventsMethod = PostServiceGrpc.getListPostEventsMethod) == null) {
      synchronized (PostServiceGrpc.class) {
        if ((getListPostEventsMethod = PostServiceGrpc.getListPostEventsMethod) == null) {
          PostServiceGrpc.getListPostEventsMethod = getListPostEventsMethod =
              io.grpc.MethodDescriptor.<com.example.posts.v1.ListPostEventsRequest, com.example.posts.v1.ListPostEventsResponse>newBuilder()
              .setType(io.grpc.MethodDescriptor.MethodType.UNARY)
              .setFullMethodName(generateFullMethodName(SERVICE_NAME, "ListPostEvents"))
              .setSampledToLocalTracing(true)
              .setRequestMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  com.example.posts.v1.ListPostEventsRequest.getDefaultInstance()))
              .setResponseMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  com.example.posts.v1.ListPostEventsResponse.getDefaultInstance()))
              .setSchemaDescriptor(new PostServiceMethodDescriptorSupplier("ListPostEvents"))
              .build();
        }
      }
    }
    return getListPostEventsMethod;
  }

  private static volatile io.grpc.MethodDescriptor<com.example.posts.v1.WatchPostEventsRequest,
      com.example.posts.v1.WatchPostEventsResponse> getWatchPostEventsMethod;

  @io.grpc.stub.annotations.RpcMethod(
      fullMethodName = SERVICE_NAME + '/' + "WatchPostEvents",
      requestType = com.example.posts.v1.WatchPostEventsRequest.class,
      responseType = com.example.posts.v1.WatchPostEventsResponse.class,
      methodType = io.grpc.MethodDescriptor.MethodType.SERVER_STREAMING)
  public static io.grpc.MethodDescriptor<com.example.posts.v1.WatchPostEventsRequest,
      com.example.posts.v1.WatchPostEventsResponse> getWatchPostEventsMethod() {
    io.grpc.MethodDescriptor<com.example.posts.v1.WatchPostEventsRequest, com.example.posts.v1.WatchPostEventsResponse> getWatchPostEventsMethod;
    if ((getWatchPostEventsMethod = PostServiceGrpc.getWatchPostEventsMethod) == null) {
      synchronized (PostServiceGrpc.class) {
        if ((getWatchPostEventsMethod = PostServiceGrpc.getWatchPostEventsMethod) == null) {
          PostServiceGrpc.getWatchPostEventsMethod = getWatchPostEventsMethod =
              io.grpc.MethodDescriptor.<com.example.posts.v1.WatchPostEventsRequest, com.example.posts.v1.WatchPostEventsResponse>newBuilder()
              .setType(io.grpc.MethodDescriptor.MethodType.SERVER_STREAMING)
              .setFullMethodName(generateFullMethodName(SERVICE_NAME, "WatchPostEvents"))
              .setSampledToLocalTracing(true)
              .setRequestMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  com.example.posts.v1.WatchPostEventsRequest.getDefaultInstance()))
              .setResponseMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  com.example.posts.v1.WatchPostEventsResponse.getDefaultInstance()))
              .setSchemaDescriptor(new PostServiceMethodDescriptorSupplier("WatchPostEvents"))
              .build();
        }
      }
    }
    return getWatchPostEventsMethod;
  }

  private static volatile io.grpc.MethodDescriptor<com.example.posts.v1.CreateWebhookSubscriptionRequest,
      com.example.posts.v1.CreateWebhookSubscriptionResponse> getCreateWebhookSubscriptionMethod;

  @io.grpc.stub.annotations.RpcMethod(
      fullMethodName = SERVICE_NAME + '/' + "CreateWebhookSubscription",
      requestType = com.example.posts.v1.CreateWebhookSubscriptionRequest.class,
      responseType = com.example.posts.v1.CreateWebhookSubscriptionResponse.class,
      methodType = io.grpc.MethodDescriptor.MethodType.UNARY)
  public static io.grpc.MethodDescriptor<com.example.posts.v1.CreateWebhookSubscriptionRequest,
      com.example.posts.v1.CreateWebhookSubscriptionResponse> getCreateWebhookSubscriptionMethod() {
    io.grpc.MethodDescriptor<com.example.posts.v1.CreateWebhookSubscriptionRequest, com.example.posts.v1.CreateWebhookSubscriptionResponse> getCreateWebhookSubscriptionMethod;
    if ((getCreateWebhookSubscriptionMethod = PostServiceGrpc.getCreateWebhookSubscriptionMethod) == null) {
      synchronized (PostServiceGrpc.class) {
        if ((getCreateWebhookSubscriptionMethod = PostServiceGrpc.getCreateWebhookSubscriptionMethod) == null) {
          PostServiceGrpc.getCreateWebhookSubscriptionMethod = getCreateWebhookSubscriptionMethod =
              io.grpc.MethodDescriptor.<com.example.posts.v1.CreateWebhookSubscriptionRequest, com.example.posts.v1.CreateWebhookSubscriptionResponse>newBuilder()
              .setType(io.grpc.MethodDescriptor.MethodType.UNARY)
              .setFullMethodName(generateFullMethodName(SERVICE_NAME, "CreateWebhookSubscription"))
              .setSampledToLocalTracing(true)
              .setRequestMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  com.example.posts.v1.CreateWebhookSubscriptionRequest.getDefaultInstance()))
              .setResponseMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  com.example.posts.v1.CreateWebhookSubscriptionResponse.getDefaultInstance()))
              .setSchemaDescriptor(new PostServiceMethodDescriptorSupplier("CreateWebhookSubscription"))
              .build();
        }
      }
    }
    return getCreateWebhookSubscriptionMethod;
  }

  private static volatile io.grpc.MethodDescriptor<com.example.posts.v1.ListWebhookSubscriptionsRequest,
      com.example.posts.v1.ListWebhookSubscriptionsResponse> getListWebhookSubscriptionsMethod;

  @io.grpc.stub.annotations.RpcMethod(
      fullMethodName = SERVICE_NAME + '/' + "ListWebhookSubscriptions",
      requestType = com.example.posts.v1.ListWebhookSubscriptionsRequest.class,
      responseType = com.example.posts.v1.ListWebhookSubscriptionsResponse.class,
      methodType = io.grpc.MethodDescriptor.MethodType.UNARY)
  public static io.grpc.MethodDescriptor<com.example.posts.v1.ListWebhookSubscriptionsRequest,
      com.example.posts.v1.ListWebhookSubscriptionsResponse> getListWebhookSubscriptionsMethod() {
    io.grpc.MethodDescriptor<com.example.posts.v1.ListWebhookSubscriptionsRequest, com.example.posts.v1.ListWebhookSubscriptionsResponse> getListWebhookSubscriptionsMethod;
    if ((getListWebhookSubscriptionsMethod = PostServiceGrpc.getListWebhookSubscriptionsMethod) == null) {
      synchronized (PostServiceGrpc.class) {
        if ((getListWebhookSubscriptionsMethod = PostServiceGrpc.getListWebhookSubscriptionsMethod) == null) {
          PostServiceGrpc.getListWebhookSubscriptionsMethod = getListWebhookSubscriptionsMethod =
              io.grpc.MethodDescriptor.<com.example.posts.v1.ListWebhookSubscriptionsRequest, com.example.posts.v1.ListWebhookSubscriptionsResponse>newBuilder()
              .setType(io.grpc.MethodDescriptor.MethodType.UNARY)
              .setFullMethodName(generateFullMethodName(SERVICE_NAME, "ListWebhookSubscriptions"))
              .setSampledToLocalTracing(true)
              .setRequestMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  com.example.posts.v1.ListWebhookSubscriptionsRequest.getDefaultInstance()))
              .setResponseMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  com.example.posts.v1.ListWebhookSubscriptionsResponse.getDefaultInstance()))
              .setSchemaDescriptor(new PostServiceMethodDescriptorSupplier("ListWebhookSubscriptions"))
              .build();
        }
      }
    }
    return getListWebhookSubscriptionsMethod;
  }

  private static volatile io.grpc.MethodDescriptor<com.example.posts.v1.DeleteWebhookSubscriptionRequest,
      com.example.posts.v1.DeleteWebhookSubscriptionResponse> getDeleteWebhookSubscriptionMethod;

  @io.grpc.stub.annotations.RpcMethod(
      fullMethodName = SERVICE_NAME + '/' + "DeleteWebhookSubscription",
      requestType = com.example.posts.v1.DeleteWebhookSubscriptionRequest.class,
      responseType = com.example.posts.v1.DeleteWebhookSubscriptionResponse.class,
      methodType = io.grpc.MethodDescriptor.MethodType.UNARY)
  public static io.grpc.MethodDescriptor<com.example.posts.v1.DeleteWebhookSubscriptionRequest,
      com.example.posts.v1.DeleteWebhookSubscriptionResponse> getDeleteWebhookSubscriptionMethod() {
    io.grpc.MethodDescriptor<com.example.posts.v1.DeleteWebhookSubscriptionRequest, com.example.posts.v1.DeleteWebhookSubscriptionResponse> getDeleteWebhookSubscriptionMethod;
    if ((getDeleteWebhookSubscriptionMethod = PostServiceGrpc.getDeleteWebhookSubscriptionMethod) == null) {
      synchronized (PostServiceGrpc.class) {
        if ((getDeleteWebhookSubscriptionMethod = PostServiceGrpc.getDeleteWebhookSubscriptionMethod) == null) {
          PostServiceGrpc.getDeleteWebhookSubscriptionMethod = getDeleteWebhookSubscriptionMethod =
              io.grpc.MethodDescriptor.<com.example.posts.v1.DeleteWebhookSubscriptionRequest, com.example.posts.v1.DeleteWebhookSubscriptionResponse>newBuilder()
              .setType(io.grpc.MethodDescriptor.MethodType.UNARY)
              .setFullMethodName(generateFullMethodName(SERVICE_NAME, "DeleteWebhookSubscription"))
              .setSampledToLocalTracing(true)
              .setRequestMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  com.example.posts.v1.DeleteWebhookSubscriptionRequest.getDefaultInstance()))
              .setResponseMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  com.example.posts.v1.DeleteWebhookSubscriptionResponse.getDefaultInstance()))
              .setSchemaDescriptor(new PostServiceMethodDescriptorSupplier("DeleteWebhookSubscription"))
              .build();
        }
      }
    }
    return getDeleteWebhookSubscriptionMethod;
  }

  /**
   * Creates a new async stub that supports all call types for the service
   */
  public static PostServiceStub newStub(io.grpc.Channel channel) {
    io.grpc.stub.AbstractStub.StubFactory<PostServiceStub> factory =
      new io.grpc.stub.AbstractStub.StubFactory<PostServiceStub>() {
        @java.lang.Override
        public PostServiceStub newStub(io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
          return new PostServiceStub(channel, callOptions);
        }
      };
    return PostServiceStub.newStub(factory, channel);
  }

  /**
   * Creates a new blocking-style stub that supports unary and streaming output calls on the service
   */
  public static PostServiceBlockingStub newBlockingStub(
      io.grpc.Channel channel) {
    io.grpc.stub.AbstractStub.StubFactory<PostServiceBlockingStub> factory =
      new io.grpc.stub.AbstractStub.StubFactory<PostServiceBlockingStub>() {
        @java.lang.Override
        public PostServiceBlockingStub newStub(io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
          return new PostServiceBlockingStub(channel, callOptions);
        }
      };
    return PostServiceBlockingStub.newStub(factory, channel);
  }

  /**
   * Creates a new ListenableFuture-style stub that supports unary calls on the service
   */
  public static PostServiceFutureStub newFutureStub(
      io.grpc.Channel channel) {
    io.grpc.stub.AbstractStub.StubFactory<PostServiceFutureStub> factory =
      new io.grpc.stub.AbstractStub.StubFactory<PostServiceFutureStub>() {
        @java.lang.Override
        public PostServiceFutureStub newStub(io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
          return new PostServiceFutureStub(channel, callOptions);
        }
      };
    return PostServiceFutureStub.newStub(factory, channel);
  }

  /**
   * <pre>
   * PostService owns the lifecycle of posts: create, edit, schedule, publish,
   * cancel and track delivery.
   * </pre>
   */
  public static abstract class PostServiceImplBase implements io.grpc.BindableService {

    /**
     * <pre>
     * CreatePost makes a post as a draft, scheduled for later, or queued for
     * delivery now. The same idempotency key with the same request answers the
     * post it made the first time.
     * </pre>
     */
    public void createPost(com.example.posts.v1.CreatePostRequest request,
        io.grpc.stub.StreamObserver<com.example.posts.v1.CreatePostResponse> responseObserver) {
      io.grpc.stub.ServerCalls.asyncUnimplementedUnaryCall(getCreatePostMethod(), responseObserver);
    }

    /**
     * <pre>
     * GetPostStatus returns a post with its delivery details, thread items and
     * media. Deleted posts stay readable.
     * </pre>
     */
    public void getPostStatus(com.example.posts.v1.GetPostStatusRequest request,
        io.grpc.stub.StreamObserver<com.example.posts.v1.GetPostStatusResponse> responseObserver) {
      io.grpc.stub.ServerCalls.asyncUnimplementedUnaryCall(getGetPostStatusMethod(), responseObserver);
    }

    /**
     * <pre>
     * UpdatePost edits a draft or scheduled post, moves it between statuses, or
     * cancels a draft, scheduled or pending post. Moving a scheduled post's
     * scheduled_at into the last minute publishes it now; further into the past
     * is INVALID_FIELD unless the request also sets status STATUS_CHANGE_PUBLISH.
     * </pre>
     */
    public void updatePost(com.example.posts.v1.UpdatePostRequest request,
        io.grpc.stub.StreamObserver<com.example.posts.v1.UpdatePostResponse> responseObserver) {
      io.grpc.stub.ServerCalls.asyncUnimplementedUnaryCall(getUpdatePostMethod(), responseObserver);
    }

    /**
     * <pre>
     * DeletePost cancels a post and hides it from ListPosts (a soft delete).
     * </pre>
     */
    public void deletePost(com.example.posts.v1.DeletePostRequest request,
        io.grpc.stub.StreamObserver<com.example.posts.v1.DeletePostResponse> responseObserver) {
      io.grpc.stub.ServerCalls.asyncUnimplementedUnaryCall(getDeletePostMethod(), responseObserver);
    }

    /**
     * <pre>
     * ListPosts pages through a workspace's posts, newest first.
     * </pre>
     */
    public void listPosts(com.example.posts.v1.ListPostsRequest request,
        io.grpc.stub.StreamObserver<com.example.posts.v1.ListPostsResponse> responseObserver) {
      io.grpc.stub.ServerCalls.asyncUnimplementedUnaryCall(getListPostsMethod(), responseObserver);
    }

    /**
     * <pre>
     * ListPostEvents pages through a workspace's post events, or one post's,
     * oldest first.
     * </pre>
     */
    public void listPostEvents(com.example.posts.v1.ListPostEventsRequest request,
        io.grpc.stub.StreamObserver<com.example.posts.v1.ListPostEventsResponse> responseObserver) {
      io.grpc.stub.ServerCalls.asyncUnimplementedUnaryCall(getListPostEventsMethod(), responseObserver);
    }

    /**
     * <pre>
     * WatchPostEvents replays the events after `after_event_id`, then follows
     * new ones as they commit, on any server or worker, until the client
     * cancels. It never skips or repeats an event. When the server drains, the
     * stream ends with UNAVAILABLE / `SERVER_DRAINING`; a client reading too
     * slowly to keep up (over 10,000 events waiting for it on the server) has
     * its stream ended with RESOURCE_EXHAUSTED / `WATCHER_TOO_SLOW`, never
     * thinned. Either way, watch again with `after_event_id` set to the last
     * event_id received (the error's `lastEventId` metadata): nothing is lost.
     * </pre>
     */
    public void watchPostEvents(com.example.posts.v1.WatchPostEventsRequest request,
        io.grpc.stub.StreamObserver<com.example.posts.v1.WatchPostEventsResponse> responseObserver) {
      io.grpc.stub.ServerCalls.asyncUnimplementedUnaryCall(getWatchPostEventsMethod(), responseObserver);
    }

    /**
     * <pre>
     * CreateWebhookSubscription sends the workspace's events to a URL, signed
     * with a secret that this answer shows once. At most 20 per workspace.
     * </pre>
     */
    public void createWebhookSubscription(com.example.posts.v1.CreateWebhookSubscriptionRequest request,
        io.grpc.stub.StreamObserver<com.example.posts.v1.CreateWebhookSubscriptionResponse> responseObserver) {
      io.grpc.stub.ServerCalls.asyncUnimplementedUnaryCall(getCreateWebhookSubscriptionMethod(), responseObserver);
    }

    /**
     * <pre>
     * ListWebhookSubscriptions shows a workspace's subscriptions and their
     * delivery state, never their secrets.
     * </pre>
     */
    public void listWebhookSubscriptions(com.example.posts.v1.ListWebhookSubscriptionsRequest request,
        io.grpc.stub.StreamObserver<com.example.posts.v1.ListWebhookSubscriptionsResponse> responseObserver) {
      io.grpc.stub.ServerCalls.asyncUnimplementedUnaryCall(getListWebhookSubscriptionsMethod(), responseObserver);
    }

    /**
     * <pre>
     * DeleteWebhookSubscription stops and removes a subscription.
     * </pre>
     */
    public void deleteWebhookSubscription(com.example.posts.v1.DeleteWebhookSubscriptionRequest request,
        io.grpc.stub.StreamObserver<com.example.posts.v1.DeleteWebhookSubscriptionResponse> responseObserver) {
      io.grpc.stub.ServerCalls.asyncUnimplementedUnaryCall(getDeleteWebhookSubscriptionMethod(), responseObserver);
    }

    @java.lang.Override public final io.grpc.ServerServiceDefinition bindService() {
      return io.grpc.ServerServiceDefinition.builder(getServiceDescriptor())
          .addMethod(
            getCreatePostMethod(),
            io.grpc.stub.ServerCalls.asyncUnaryCall(
              new MethodHandlers<
                com.example.posts.v1.CreatePostRequest,
                com.example.posts.v1.CreatePostResponse>(
                  this, METHODID_CREATE_POST)))
          .addMethod(
            getGetPostStatusMethod(),
            io.grpc.stub.ServerCalls.asyncUnaryCall(
              new MethodHandlers<
                com.example.posts.v1.GetPostStatusRequest,
                com.example.posts.v1.GetPostStatusResponse>(
                  this, METHODID_GET_POST_STATUS)))
          .addMethod(
            getUpdatePostMethod(),
            io.grpc.stub.ServerCalls.asyncUnaryCall(
              new MethodHandlers<
                com.example.posts.v1.UpdatePostRequest,
                com.example.posts.v1.UpdatePostResponse>(
                  this, METHODID_UPDATE_POST)))
          .addMethod(
            getDeletePostMethod(),
            io.grpc.stub.ServerCalls.asyncUnaryCall(
              new MethodHandlers<
                com.example.posts.v1.DeletePostRequest,
                com.example.posts.v1.DeletePostResponse>(
                  this, METHODID_DELETE_POST)))
          .addMethod(
            getListPostsMethod(),
            io.grpc.stub.ServerCalls.asyncUnaryCall(
              new MethodHandlers<
                com.example.posts.v1.ListPostsRequest,
                com.example.posts.v1.ListPostsResponse>(
                  this, METHODID_LIST_POSTS)))
          .addMethod(
            getListPostEventsMethod(),
            io.grpc.stub.ServerCalls.asyncUnaryCall(
              new MethodHandlers<
                com.example.posts.v1.ListPostEventsRequest,
                com.example.posts.v1.ListPostEventsResponse>(
                  this, METHODID_LIST_POST_EVENTS)))
          .addMethod(
            getWatchPostEventsMethod(),
            io.grpc.stub.ServerCalls.asyncServerStreamingCall(
              new MethodHandlers<
                com.example.posts.v1.WatchPostEventsRequest,
                com.example.posts.v1.WatchPostEventsResponse>(
                  this, METHODID_WATCH_POST_EVENTS)))
          .addMethod(
            getCreateWebhookSubscriptionMethod(),
            io.grpc.stub.ServerCalls.asyncUnaryCall(
              new MethodHandlers<
                com.example.posts.v1.CreateWebhookSubscriptionRequest,
                com.example.posts.v1.CreateWebhookSubscriptionResponse>(
                  this, METHODID_CREATE_WEBHOOK_SUBSCRIPTION)))
          .addMethod(
            getListWebhookSubscriptionsMethod(),
            io.grpc.stub.ServerCalls.asyncUnaryCall(
              new MethodHandlers<
                com.example.posts.v1.ListWebhookSubscriptionsRequest,
                com.example.posts.v1.ListWebhookSubscriptionsResponse>(
                  this, METHODID_LIST_WEBHOOK_SUBSCRIPTIONS)))
          .addMethod(
            getDeleteWebhookSubscriptionMethod(),
            io.grpc.stub.ServerCalls.asyncUnaryCall(
              new MethodHandlers<
                com.example.posts.v1.DeleteWebhookSubscriptionRequest,
                com.example.posts.v1.DeleteWebhookSubscriptionResponse>(
                  this, METHODID_DELETE_WEBHOOK_SUBSCRIPTION)))
          .build();
    }
  }

  /**
   * <pre>
   * PostService owns the lifecycle of posts: create, edit, schedule, publish,
   * cancel and track delivery.
   * </pre>
   */
  public static final class PostServiceStub extends io.grpc.stub.AbstractAsyncStub<PostServiceStub> {
    private PostServiceStub(
        io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
      super(channel, callOptions);
    }

    @java.lang.Override
    protected PostServiceStub build(
        io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
      return new PostServiceStub(channel, callOptions);
    }

    /**
     * <pre>
     * CreatePost makes a post as a draft, scheduled for later, or queued for
     * delivery now. The same idempotency key with the same request answers the
     * post it made the first time.
     * </pre>
     */
    public void createPost(com.example.posts.v1.CreatePostRequest request,
        io.grpc.stub.StreamObserver<com.example.posts.v1.CreatePostResponse> responseObserver) {
      io.grpc.stub.ClientCalls.asyncUnaryCall(
          getChannel().newCall(getCreatePostMethod(), getCallOptions()), request, responseObserver);
    }

    /**
     * <pre>
     * GetPostStatus returns a post with its delivery details, thread items and
     * media. Deleted posts stay readable.
     * </pre>
     */
    public void getPostStatus(com.example.posts.v1.GetPostStatusRequest request,
        io.grpc.stub.StreamObserver<com.example.posts.v1.GetPostStatusResponse> responseObserver) {
      io.grpc.stub.ClientCalls.asyncUnaryCall(
          getChannel().newCall(getGetPostStatusMethod(), getCallOptions()), request, responseObserver);
    }

    /**
     * <pre>
     * UpdatePost edits a draft or scheduled post, moves it between statuses, or
     * cancels a draft, scheduled or pending post. Moving a scheduled post's
     * scheduled_at into the last minute publishes it now; further into the past
     * is INVALID_FIELD unless the request also sets status STATUS_CHANGE_PUBLISH.
     * </pre>
     */
    public void updatePost(com.example.posts.v1.UpdatePostRequest request,
        io.grpc.stub.StreamObserver<com.example.posts.v1.UpdatePostResponse> responseObserver) {
      io.grpc.stub.ClientCalls.asyncUnaryCall(
          getChannel().newCall(getUpdatePostMethod(), getCallOptions()), request, responseObserver);
    }

    /**
     * <pre>
     * DeletePost cancels a post and hides it from ListPosts (a soft delete).
     * </pre>
     */
    public void deletePost(com.example.posts.v1.DeletePostRequest request,
        io.grpc.stub.StreamObserver<com.example.posts.v1.DeletePostResponse> responseObserver) {
      io.grpc.stub.ClientCalls.asyncUnaryCall(
          getChannel().newCall(getDeletePostMethod(), getCallOptions()), request, responseObserver);
    }

    /**
     * <pre>
     * ListPosts pages through a workspace's posts, newest first.
     * </pre>
     */
    public void listPosts(com.example.posts.v1.ListPostsRequest request,
        io.grpc.stub.StreamObserver<com.example.posts.v1.ListPostsResponse> responseObserver) {
      io.grpc.stub.ClientCalls.asyncUnaryCall(
          getChannel().newCall(getListPostsMethod(), getCallOptions()), request, responseObserver);
    }

    /**
     * <pre>
     * ListPostEvents pages through a workspace's post events, or one post's,
     * oldest first.
     * </pre>
     */
    public void listPostEvents(com.example.posts.v1.ListPostEventsRequest request,
        io.grpc.stub.StreamObserver<com.example.posts.v1.ListPostEventsResponse> responseObserver) {
      io.grpc.stub.ClientCalls.asyncUnaryCall(
          getChannel().newCall(getListPostEventsMethod(), getCallOptions()), request, responseObserver);
    }

    /**
     * <pre>
     * WatchPostEvents replays the events after `after_event_id`, then follows
     * new ones as they commit, on any server or worker, until the client
     * cancels. It never skips or repeats an event. When the server drains, the
     * stream ends with UNAVAILABLE / `SERVER_DRAINING`; a client reading too
     * slowly to keep up (over 10,000 events waiting for it on the server) has
     * its stream ended with RESOURCE_EXHAUSTED / `WATCHER_TOO_SLOW`, never
     * thinned. Either way, watch again with `after_event_id` set to the last
     * event_id received (the error's `lastEventId` metadata): nothing is lost.
     * </pre>
     */
    public void watchPostEvents(com.example.posts.v1.WatchPostEventsRequest request,
        io.grpc.stub.StreamObserver<com.example.posts.v1.WatchPostEventsResponse> responseObserver) {
      io.grpc.stub.ClientCalls.asyncServerStreamingCall(
          getChannel().newCall(getWatchPostEventsMethod(), getCallOptions()), request, responseObserver);
    }

    /**
     * <pre>
     * CreateWebhookSubscription sends the workspace's events to a URL, signed
     * with a secret that this answer shows once. At most 20 per workspace.
     * </pre>
     */
    public void createWebhookSubscription(com.example.posts.v1.CreateWebhookSubscriptionRequest request,
        io.grpc.stub.StreamObserver<com.example.posts.v1.CreateWebhookSubscriptionResponse> responseObserver) {
      io.grpc.stub.ClientCalls.asyncUnaryCall(
          getChannel().newCall(getCreateWebhookSubscriptionMethod(), getCallOptions()), request, responseObserver);
    }

    /**
     * <pre>
     * ListWebhookSubscriptions shows a workspace's subscriptions and their
     * delivery state, never their secrets.
     * </pre>
     */
    public void listWebhookSubscriptions(com.example.posts.v1.ListWebhookSubscriptionsRequest request,
        io.grpc.stub.StreamObserver<com.example.posts.v1.ListWebhookSubscriptionsResponse> responseObserver) {
      io.grpc.stub.ClientCalls.asyncUnaryCall(
          getChannel().newCall(getListWebhookSubscriptionsMethod(), getCallOptions()), request, responseObserver);
    }

    /**
     * <pre>
     * DeleteWebhookSubscription stops and removes a subscription.
     * </pre>
     */
    public void deleteWebhookSubscription(com.example.posts.v1.DeleteWebhookSubscriptionRequest request,
        io.grpc.stub.StreamObserver<com.example.posts.v1.DeleteWebhookSubscriptionResponse> responseObserver) {
      io.grpc.stub.ClientCalls.asyncUnaryCall(
          getChannel().newCall(getDeleteWebhookSubscriptionMethod(), getCallOptions()), request, responseObserver);
    }
  }

  /**
   * <pre>
   * PostService owns the lifecycle of posts: create, edit, schedule, publish,
   * cancel and track delivery.
   * </pre>
   */
  public static final class PostServiceBlockingStub extends io.grpc.stub.AbstractBlockingStub<PostServiceBlockingStub> {
    private PostServiceBlockingStub(
        io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
      super(channel, callOptions);
    }

    @java.lang.Override
    protected PostServiceBlockingStub build(
        io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
      return new PostServiceBlockingStub(channel, callOptions);
    }

    /**
     * <pre>
     * CreatePost makes a post as a draft, scheduled for later, or queued for
     * delivery now. The same idempotency key with the same request answers the
     * post it made the first time.
     * </pre>
     */
    public com.example.posts.v1.CreatePostResponse createPost(com.example.posts.v1.CreatePostRequest request) {
      return io.grpc.stub.ClientCalls.blockingUnaryCall(
          getChannel(), getCreatePostMethod(), getCallOptions(), request);
    }

    /**
     * <pre>
     * GetPostStatus returns a post with its delivery details, thread items and
     * media. Deleted posts stay readable.
     * </pre>
     */
    public com.example.posts.v1.GetPostStatusResponse getPostStatus(com.example.posts.v1.GetPostStatusRequest request) {
      return io.grpc.stub.ClientCalls.blockingUnaryCall(
          getChannel(), getGetPostStatusMethod(), getCallOptions(), request);
    }

    /**
     * <pre>
     * UpdatePost edits a draft or scheduled post, moves it between statuses, or
     * cancels a draft, scheduled or pending post. Moving a scheduled post's
     * scheduled_at into the last minute publishes it now; further into the past
     * is INVALID_FIELD unless the request also sets status STATUS_CHANGE_PUBLISH.
     * </pre>
     */
    public com.example.posts.v1.UpdatePostResponse updatePost(com.example.posts.v1.UpdatePostRequest request) {
      return io.grpc.stub.ClientCalls.blockingUnaryCall(
          getChannel(), getUpdatePostMethod(), getCallOptions(), request);
    }

    /**
     * <pre>
     * DeletePost cancels a post and hides it from ListPosts (a soft delete).
     * </pre>
     */
    public com.example.posts.v1.DeletePostResponse deletePost(com.example.posts.v1.DeletePostRequest request) {
      return io.grpc.stub.ClientCalls.blockingUnaryCall(
          getChannel(), getDeletePostMethod(), getCallOptions(), request);
    }

    /**
     * <pre>
     * ListPosts pages through a workspace's posts, newest first.
     * </pre>
     */
    public com.example.posts.v1.ListPostsResponse listPosts(com.example.posts.v1.ListPostsRequest request) {
      return io.grpc.stub.ClientCalls.blockingUnaryCall(
          getChannel(), getListPostsMethod(), getCallOptions(), request);
    }

    /**
     * <pre>
     * ListPostEvents pages through a workspace's post events, or one post's,
     * oldest first.
     * </pre>
     */
    public com.example.posts.v1.ListPostEventsResponse listPostEvents(com.example.posts.v1.ListPostEventsRequest request) {
      return io.grpc.stub.ClientCalls.blockingUnaryCall(
          getChannel(), getListPostEventsMethod(), getCallOptions(), request);
    }

    /**
     * <pre>
     * WatchPostEvents replays the events after `after_event_id`, then follows
     * new ones as they commit, on any server or worker, until the client
     * cancels. It never skips or repeats an event. When the server drains, the
     * stream ends with UNAVAILABLE / `SERVER_DRAINING`; a client reading too
     * slowly to keep up (over 10,000 events waiting for it on the server) has
     * its stream ended with RESOURCE_EXHAUSTED / `WATCHER_TOO_SLOW`, never
     * thinned. Either way, watch again with `after_event_id` set to the last
     * event_id received (the error's `lastEventId` metadata): nothing is lost.
     * </pre>
     */
    public java.util.Iterator<com.example.posts.v1.WatchPostEventsResponse> watchPostEvents(
        com.example.posts.v1.WatchPostEventsRequest request) {
      return io.grpc.stub.ClientCalls.blockingServerStreamingCall(
          getChannel(), getWatchPostEventsMethod(), getCallOptions(), request);
    }

    /**
     * <pre>
     * CreateWebhookSubscription sends the workspace's events to a URL, signed
     * with a secret that this answer shows once. At most 20 per workspace.
     * </pre>
     */
    public com.example.posts.v1.CreateWebhookSubscriptionResponse createWebhookSubscription(com.example.posts.v1.CreateWebhookSubscriptionRequest request) {
      return io.grpc.stub.ClientCalls.blockingUnaryCall(
          getChannel(), getCreateWebhookSubscriptionMethod(), getCallOptions(), request);
    }

    /**
     * <pre>
     * ListWebhookSubscriptions shows a workspace's subscriptions and their
     * delivery state, never their secrets.
     * </pre>
     */
    public com.example.posts.v1.ListWebhookSubscriptionsResponse listWebhookSubscriptions(com.example.posts.v1.ListWebhookSubscriptionsRequest request) {
      return io.grpc.stub.ClientCalls.blockingUnaryCall(
          getChannel(), getListWebhookSubscriptionsMethod(), getCallOptions(), request);
    }

    /**
     * <pre>
     * DeleteWebhookSubscription stops and removes a subscription.
     * </pre>
     */
    public com.example.posts.v1.DeleteWebhookSubscriptionResponse deleteWebhookSubscription(com.example.posts.v1.DeleteWebhookSubscriptionRequest request) {
      return io.grpc.stub.ClientCalls.blockingUnaryCall(
          getChannel(), getDeleteWebhookSubscriptionMethod(), getCallOptions(), request);
    }
  }

  /**
   * <pre>
   * PostService owns the lifecycle of posts: create, edit, schedule, publish,
   * cancel and track delivery.
   * </pre>
   */
  public static final class PostServiceFutureStub extends io.grpc.stub.AbstractFutureStub<PostServiceFutureStub> {
    private PostServiceFutureStub(
        io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
      super(channel, callOptions);
    }

    @java.lang.Override
    protected PostServiceFutureStub build(
        io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
      return new PostServiceFutureStub(channel, callOptions);
    }

    /**
     * <pre>
     * CreatePost makes a post as a draft, scheduled for later, or queued for
     * delivery now. The same idempotency key with the same request answers the
     * post it made the first time.
     * </pre>
     */
    public com.google.common.util.concurrent.ListenableFuture<com.example.posts.v1.CreatePostResponse> createPost(
        com.example.posts.v1.CreatePostRequest request) {
      return io.grpc.stub.ClientCalls.futureUnaryCall(
          getChannel().newCall(getCreatePostMethod(), getCallOptions()), request);
    }

    /**
     * <pre>
     * GetPostStatus returns a post with its delivery details, thread items and
     * media. Deleted posts stay readable.
     * </pre>
     */
    public com.google.common.util.concurrent.ListenableFuture<com.example.posts.v1.GetPostStatusResponse> getPostStatus(
        com.example.posts.v1.GetPostStatusRequest request) {
      return io.grpc.stub.ClientCalls.futureUnaryCall(
          getChannel().newCall(getGetPostStatusMethod(), getCallOptions()), request);
    }

    /**
     * <pre>
     * UpdatePost edits a draft or scheduled post, moves it between statuses, or
     * cancels a draft, scheduled or pending post. Moving a scheduled post's
     * scheduled_at into the last minute publishes it now; further into the past
     * is INVALID_FIELD unless the request also sets status STATUS_CHANGE_PUBLISH.
     * </pre>
     */
    public com.google.common.util.concurrent.ListenableFuture<com.example.posts.v1.UpdatePostResponse> updatePost(
        com.example.posts.v1.UpdatePostRequest request) {
      return io.grpc.stub.ClientCalls.futureUnaryCall(
          getChannel().newCall(getUpdatePostMethod(), getCallOptions()), request);
    }

    /**
     * <pre>
     * DeletePost cancels a post and hides it from ListPosts (a soft delete).
     * </pre>
     */
    public com.google.common.util.concurrent.ListenableFuture<com.example.posts.v1.DeletePostResponse> deletePost(
        com.example.posts.v1.DeletePostRequest request) {
      return io.grpc.stub.ClientCalls.futureUnaryCall(
          getChannel().newCall(getDeletePostMethod(), getCallOptions()), request);
    }

    /**
     * <pre>
     * ListPosts pages through a workspace's posts, newest first.
     * </pre>
     */
    public com.google.common.util.concurrent.ListenableFuture<com.example.posts.v1.ListPostsResponse> listPosts(
        com.example.posts.v1.ListPostsRequest request) {
      return io.grpc.stub.ClientCalls.futureUnaryCall(
          getChannel().newCall(getListPostsMethod(), getCallOptions()), request);
    }

    /**
     * <pre>
     * ListPostEvents pages through a workspace's post events, or one post's,
     * oldest first.
     * </pre>
     */
    public com.google.common.util.concurrent.ListenableFuture<com.example.posts.v1.ListPostEventsResponse> listPostEvents(
        com.example.posts.v1.ListPostEventsRequest request) {
      return io.grpc.stub.ClientCalls.futureUnaryCall(
          getChannel().newCall(getListPostEventsMethod(), getCallOptions()), request);
    }

    /**
     * <pre>
     * CreateWebhookSubscription sends the workspace's events to a URL, signed
     * with a secret that this answer shows once. At most 20 per workspace.
     * </pre>
     */
    public com.google.common.util.concurrent.ListenableFuture<com.example.posts.v1.CreateWebhookSubscriptionResponse> createWebhookSubscription(
        com.example.posts.v1.CreateWebhookSubscriptionRequest request) {
      return io.grpc.stub.ClientCalls.futureUnaryCall(
          getChannel().newCall(getCreateWebhookSubscriptionMethod(), getCallOptions()), request);
    }

    /**
     * <pre>
     * ListWebhookSubscriptions shows a workspace's subscriptions and their
     * delivery state, never their secrets.
     * </pre>
     */
    public com.google.common.util.concurrent.ListenableFuture<com.example.posts.v1.ListWebhookSubscriptionsResponse> listWebhookSubscriptions(
        com.example.posts.v1.ListWebhookSubscriptionsRequest request) {
      return io.grpc.stub.ClientCalls.futureUnaryCall(
          getChannel().newCall(getListWebhookSubscriptionsMethod(), getCallOptions()), request);
    }

    /**
     * <pre>
     * DeleteWebhookSubscription stops and removes a subscription.
     * </pre>
     */
    public com.google.common.util.concurrent.ListenableFuture<com.example.posts.v1.DeleteWebhookSubscriptionResponse> deleteWebhookSubscription(
        com.example.posts.v1.DeleteWebhookSubscriptionRequest request) {
      return io.grpc.stub.ClientCalls.futureUnaryCall(
          getChannel().newCall(getDeleteWebhookSubscriptionMethod(), getCallOptions()), request);
    }
  }

  private static final int METHODID_CREATE_POST = 0;
  private static final int METHODID_GET_POST_STATUS = 1;
  private static final int METHODID_UPDATE_POST = 2;
  private static final int METHODID_DELETE_POST = 3;
  private static final int METHODID_LIST_POSTS = 4;
  private static final int METHODID_LIST_POST_EVENTS = 5;
  private static final int METHODID_WATCH_POST_EVENTS = 6;
  private static final int METHODID_CREATE_WEBHOOK_SUBSCRIPTION = 7;
  private static final int METHODID_LIST_WEBHOOK_SUBSCRIPTIONS = 8;
  private static final int METHODID_DELETE_WEBHOOK_SUBSCRIPTION = 9;

  private static final class MethodHandlers<Req, Resp> implements
      io.grpc.stub.ServerCalls.UnaryMethod<Req, Resp>,
      io.grpc.stub.ServerCalls.ServerStreamingMethod<Req, Resp>,
      io.grpc.stub.ServerCalls.ClientStreamingMethod<Req, Resp>,
      io.grpc.stub.ServerCalls.BidiStreamingMethod<Req, Resp> {
    private final PostServiceImplBase serviceImpl;
    private final int methodId;

    MethodHandlers(PostServiceImplBase serviceImpl, int methodId) {
      this.serviceImpl = serviceImpl;
      this.methodId = methodId;
    }

    @java.lang.Override
    @java.lang.SuppressWarnings("unchecked")
    public void invoke(Req request, io.grpc.stub.StreamObserver<Resp> responseObserver) {
      switch (methodId) {
        case METHODID_CREATE_POST:
          serviceImpl.createPost((com.example.posts.v1.CreatePostRequest) request,
              (io.grpc.stub.StreamObserver<com.example.posts.v1.CreatePostResponse>) responseObserver);
          break;
        case METHODID_GET_POST_STATUS:
          serviceImpl.getPostStatus((com.example.posts.v1.GetPostStatusRequest) request,
              (io.grpc.stub.StreamObserver<com.example.posts.v1.GetPostStatusResponse>) responseObserver);
          break;
        case METHODID_UPDATE_POST:
          serviceImpl.updatePost((com.example.posts.v1.UpdatePostRequest) request,
              (io.grpc.stub.StreamObserver<com.example.posts.v1.UpdatePostResponse>) responseObserver);
          break;
        case METHODID_DELETE_POST:
          serviceImpl.deletePost((com.example.posts.v1.DeletePostRequest) request,
              (io.grpc.stub.StreamObserver<com.example.posts.v1.DeletePostResponse>) responseObserver);
          break;
        case METHODID_LIST_POSTS:
          serviceImpl.listPosts((com.example.posts.v1.ListPostsRequest) request,
              (io.grpc.stub.StreamObserver<com.example.posts.v1.ListPostsResponse>) responseObserver);
          break;
        case METHODID_LIST_POST_EVENTS:
          serviceImpl.listPostEvents((com.example.posts.v1.ListPostEventsRequest) request,
              (io.grpc.stub.StreamObserver<com.example.posts.v1.ListPostEventsResponse>) responseObserver);
          break;
        case METHODID_WATCH_POST_EVENTS:
          serviceImpl.watchPostEvents((com.example.posts.v1.WatchPostEventsRequest) request,
              (io.grpc.stub.StreamObserver<com.example.posts.v1.WatchPostEventsResponse>) responseObserver);
          break;
        case METHODID_CREATE_WEBHOOK_SUBSCRIPTION:
          serviceImpl.createWebhookSubscription((com.example.posts.v1.CreateWebhookSubscriptionRequest) request,
              (io.grpc.stub.StreamObserver<com.example.posts.v1.CreateWebhookSubscriptionResponse>) responseObserver);
          break;
        case METHODID_LIST_WEBHOOK_SUBSCRIPTIONS:
          serviceImpl.listWebhookSubscriptions((com.example.posts.v1.ListWebhookSubscriptionsRequest) request,
              (io.grpc.stub.StreamObserver<com.example.posts.v1.ListWebhookSubscriptionsResponse>) responseObserver);
          break;
        case METHODID_DELETE_WEBHOOK_SUBSCRIPTION:
          serviceImpl.deleteWebhookSubscription((com.example.posts.v1.DeleteWebhookSubscriptionRequest) request,
              (io.grpc.stub.StreamObserver<com.example.posts.v1.DeleteWebhookSubscriptionResponse>) responseObserver);
          break;
        default:
          throw new AssertionError();
      }
    }

    @java.lang.Override
    @java.lang.SuppressWarnings("unchecked")
    public io.grpc.stub.StreamObserver<Req> invoke(
        io.grpc.stub.StreamObserver<Resp> responseObserver) {
      switch (methodId) {
        default:
          throw new AssertionError();
      }
    }
  }

  private static abstract class PostServiceBaseDescriptorSupplier
      implements io.grpc.protobuf.ProtoFileDescriptorSupplier, io.grpc.protobuf.ProtoServiceDescriptorSupplier {
    PostServiceBaseDescriptorSupplier() {}

    @java.lang.Override
    public com.google.protobuf.Descriptors.FileDescriptor getFileDescriptor() {
      return com.example.posts.v1.PostsProto.getDescriptor();
    }

    @java.lang.Override
    public com.google.protobuf.Descriptors.ServiceDescriptor getServiceDescriptor() {
      return getFileDescriptor().findServiceByName("PostService");
    }
  }

  private static final class PostServiceFileDescriptorSupplier
      extends PostServiceBaseDescriptorSupplier {
    PostServiceFileDescriptorSupplier() {}
  }

  private static final class PostServiceMethodDescriptorSupplier
      extends PostServiceBaseDescriptorSupplier
      implements io.grpc.protobuf.ProtoMethodDescriptorSupplier {
    private final String methodName;

    PostServiceMethodDescriptorSupplier(String methodName) {
      this.methodName = methodName;
    }

    @java.lang.Override
    public com.google.protobuf.Descriptors.MethodDescriptor getMethodDescriptor() {
      return getServiceDescriptor().findMethodByName(methodName);
    }
  }

  private static volatile io.grpc.ServiceDescriptor serviceDescriptor;

  public static io.grpc.ServiceDescriptor getServiceDescriptor() {
    io.grpc.ServiceDescriptor result = serviceDescriptor;
    if (result == null) {
      synchronized (PostServiceGrpc.class) {
        result = serviceDescriptor;
        if (result == null) {
          serviceDescriptor = result = io.grpc.ServiceDescriptor.newBuilder(SERVICE_NAME)
              .setSchemaDescriptor(new PostServiceFileDescriptorSupplier())
              .addMethod(getCreatePostMethod())
              .addMethod(getGetPostStatusMethod())
              .addMethod(getUpdatePostMethod())
              .addMethod(getDeletePostMethod())
              .addMethod(getListPostsMethod())
              .addMethod(getListPostEventsMethod())
              .addMethod(getWatchPostEventsMethod())
              .addMethod(getCreateWebhookSubscriptionMethod())
              .addMethod(getListWebhookSubscriptionsMethod())
              .addMethod(getDeleteWebhookSubscriptionMethod())
              .build();
        }
      }
    }
    return result;
  }
}
