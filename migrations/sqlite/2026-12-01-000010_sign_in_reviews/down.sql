DROP TABLE sign_in_reviews;
